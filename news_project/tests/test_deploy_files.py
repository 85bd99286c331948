"""docker-compose.yml, the Dockerfile, .dockerignore and .env.example, read as an engine would.

No container engine runs in CI: these tests hold what the files promise, and .ci/run validates
docker-compose.yml against the Compose Specification's JSON schema.
"""

import re
from pathlib import Path

import pytest
import yaml
from django.conf import settings
from dotenv import dotenv_values

from testing.processes import run_manage

ROOT = Path(settings.BASE_DIR)
APP_SERVICES = ["web", "sync", "prune"]


@pytest.fixture(scope="module")
def services() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]


def command_of(service: dict) -> str:
    command = service["command"]
    return command if isinstance(command, str) else " ".join(command)


# --- docker-compose.yml --------------------------------------------------------------------------


def test_web_sync_and_prune_share_one_image_built_once(services):
    images = {services[name]["image"] for name in APP_SERVICES}
    builders = [name for name, service in services.items() if "build" in service]

    assert len(images) == 1
    assert builders == ["web", "fake-target"]
    assert services["web"]["build"] == {"context": ".", "target": "app"}


@pytest.mark.parametrize("name", [*APP_SERVICES, "fake-target"])
def test_every_service_of_ours_has_an_init_that_passes_sigterm_on(services, name):
    assert services[name]["init"] is True


def test_the_sync_service_stops_after_the_run_under_way(services):
    sync = services["sync"]
    command = command_of(sync)

    assert "manage.py sync_changes" in command
    if "while true" in command:  # the loop: SIGTERM waits for the run, cuts the sleep short
        assert 'trap "exit 0" TERM' in command
        assert "& wait $$!" in command
        # Long enough for a run bounded by SYNC_TIME_BUDGET (50 s) and one call's timeout (10 s).
        assert int(sync["stop_grace_period"].rstrip("s")) >= 60


def test_the_prune_service_prunes_and_verifies_daily_once_the_database_is_migrated(services):
    prune = services["prune"]
    command = command_of(prune)

    assert "manage.py prune_events;" in command
    assert "manage.py flushexpiredtokens;" in command
    # Read-only and lock-free: beside a follower, and its exit 1 (differences) ends no loop.
    assert "manage.py sync_changes --verify;" in command
    assert "set -e" not in command
    assert 'sleep "$${PRUNE_INTERVAL}" & wait $$!' in command
    assert prune["environment"]["PRUNE_INTERVAL"] == "${PRUNE_INTERVAL:-86400}"
    assert prune["depends_on"] == {"web": {"condition": "service_healthy"}}


@pytest.mark.parametrize("name", APP_SERVICES)
def test_the_stack_never_runs_with_debug_on(services, name):
    environment = services[name]["environment"]

    assert environment["DJANGO_DEBUG"] == "0"
    assert environment["DATABASE_URL"].endswith("@db:5432/news")
    assert services[name]["env_file"] == ".env"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_the_database_password_goes_apart_from_the_url_so_any_character_works(services, name):
    environment = services[name]["environment"]

    assert environment["DATABASE_URL"] == "postgres://news@db:5432/news"
    assert environment["DATABASE_PASSWORD"] == "${POSTGRES_PASSWORD:-news}"
    assert services["db"]["environment"]["POSTGRES_PASSWORD"] == "${POSTGRES_PASSWORD:-news}"


def test_every_published_port_is_on_this_machine_only_unless_env_says_otherwise(services):
    published = {name: service.get("ports", []) for name, service in services.items()}

    assert published["web"] == ["${PUBLISH_ADDRESS:-127.0.0.1}:${WEB_PORT:-8000}:8000"]
    assert published["fake-target"] == [
        "${PUBLISH_ADDRESS:-127.0.0.1}:${FAKE_TARGET_PORT:-3000}:3000"
    ]
    assert all(
        port.startswith("${PUBLISH_ADDRESS:-127.0.0.1}:")
        for ports in published.values()
        for port in ports
    )


def container_environment(services, name: str, env_file: dict[str, str]) -> dict[str, str]:
    """The environment docker compose gives a service: its env_file, then its `environment`,
    each ${VAR:-default} filled from the env file (as compose reads .env)."""

    def fill(value: str) -> str:
        return re.sub(r"\$\{([A-Z_]+):-([^}]*)\}", lambda m: env_file.get(m[1]) or m[2], str(value))

    return {
        **env_file,
        **{key: fill(value) for key, value in services[name]["environment"].items()},
    }


def env_example() -> dict[str, str]:
    values = dotenv_values(ROOT / ".env.example")
    return {name: value for name, value in values.items() if value is not None}


def test_with_the_placeholder_key_the_first_check_fails_visibly_in_one_line(services):
    environment = container_environment(services, "web", env_example())

    result = run_manage("check_env", clean=True, **environment)

    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "Error: DJANGO_SECRET_KEY is still the placeholder of .env.example; set a long random "
        "value, e.g. the output of: python3 -c 'import secrets; print(secrets.token_urlsafe(50))'"
    ]


def test_with_a_key_and_any_password_the_check_shows_what_the_stack_will_use(services):
    env_file = {**env_example(), "DJANGO_SECRET_KEY": "k" * 50, "POSTGRES_PASSWORD": "p@s/s#w?rd"}
    environment = container_environment(services, "sync", env_file)

    result = run_manage("check_env", clean=True, **environment)

    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.splitlines() == [
        "Settings are usable: DJANGO_DEBUG off; database postgres://news:***@db:5432/news; "
        "target https://jsonplaceholder.typicode.com (keeps nothing it is sent); hosts "
        "localhost, 127.0.0.1; /metrics and /health/sync/ refused (no METRICS_TOKEN)"
    ]
    assert "p@s/s#w?rd" not in result.stdout


def test_env_example_sets_each_variable_once():
    names = re.findall(r"^([A-Z][A-Z0-9_]*)=", (ROOT / ".env.example").read_text(), re.MULTILINE)

    assert names and len(names) == len(set(names))


@pytest.mark.parametrize("name", APP_SERVICES)
def test_every_process_that_may_write_reaches_the_cache_of_reads(services, name):
    assert services[name]["environment"]["REDIS_URL"] == "redis://redis:6379/0"


def test_the_cache_keeps_nothing_on_disk_and_evicts_answers_only(services):
    redis = services["redis"]["command"]
    options = dict(zip(redis[1::2], redis[2::2], strict=True))

    assert redis[0] == "redis-server"
    assert options == {
        "--save": "",
        "--appendonly": "no",
        "--maxmemory": "256mb",
        "--maxmemory-policy": "volatile-lru",
    }
    assert services["web"]["depends_on"]["redis"] == {"condition": "service_started"}


def test_web_serves_with_manage_py_serve_as_the_dockerfile_does(services):
    command = command_of(services["web"])
    dockerfile_cmd = next(line for line in dockerfile_stages()["app"] if line.startswith("CMD "))

    assert command.endswith('&& exec python manage.py serve"')
    assert dockerfile_cmd == 'CMD ["python", "manage.py", "serve"]'


def test_web_is_given_the_time_its_workers_take_to_finish_on_stop(services):
    from news_project.serving import STOP_SECONDS

    grace = services["web"]["stop_grace_period"]

    assert grace.endswith("s") and int(grace[:-1]) > STOP_SECONDS


def test_the_fake_target_runs_only_with_the_offline_profile(services):
    with_profiles = {name for name, service in services.items() if "profiles" in service}

    assert with_profiles == {"fake-target"}
    assert services["fake-target"]["profiles"] == ["offline"]
    assert services["fake-target"]["build"] == {"context": ".", "target": "fake-target"}
    assert services["fake-target"]["image"] not in {services["web"]["image"]}


# --- Dockerfile ----------------------------------------------------------------------------------


def dockerfile_stages() -> dict[str, list[str]]:
    """Instructions per stage, by stage name, in order (the last one is the default target)."""
    stages: dict[str, list[str]] = {}
    current: list[str] = []
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if match := re.match(r"FROM \S+ AS (\S+)$", line):
            current = stages.setdefault(match.group(1), [])
        current.append(line)
    return stages


def copied(instructions: list[str]) -> list[str]:
    return [line.split()[1] for line in instructions if line.startswith("COPY ")]


def test_the_default_image_is_the_app_with_the_product_only():
    stages = dockerfile_stages()

    assert list(stages)[-1] == "app"
    assert copied(stages["app"]) == [
        "requirements.txt",
        "manage.py",
        "news_project/",
        "accounts/",
        "news/",
        "sync/",
    ]


def test_the_app_image_collects_its_static_files_compressed_after_copying_the_product():
    app = dockerfile_stages()["app"]
    collect = next(i for i, line in enumerate(app) if "manage.py collectstatic" in line)

    assert collect > max(i for i, line in enumerate(app) if line.startswith("COPY "))
    assert "--noinput" in app[collect]
    assert ".gz" not in (ROOT / ".dockerignore").read_text()


def test_the_fake_target_image_has_the_fake_target_only_and_no_dependencies():
    fake_target = dockerfile_stages()["fake-target"]

    assert copied(fake_target) == ["fake_target/"]
    assert not any("pip install" in line for line in fake_target)
    assert fake_target[-1] == (
        'CMD ["python", "-m", "fake_target", "--host", "0.0.0.0", "--port", "3000"]'
    )


def test_both_images_run_as_a_user_not_root():
    for name, instructions in dockerfile_stages().items():
        if name != "base":
            assert "USER app" in instructions, name


def test_the_build_context_has_the_fake_target_and_no_secrets():
    ignored = (ROOT / ".dockerignore").read_text().split()

    assert "fake_target" not in ignored
    assert ".env" in ignored and ".git" in ignored and ".venv" in ignored


def test_the_json_servers_tests_install_stay_out_of_the_build_context():
    ignored = (ROOT / ".dockerignore").read_text().split()
    git_ignored = (ROOT / ".gitignore").read_text().split()
    installed_into = next(line.strip("/") for line in git_ignored if ".json-server" in line)

    assert installed_into == "testing/.json-server"  # where benchmarks/servers.py installs it
    assert installed_into in ignored
