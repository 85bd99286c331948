"""docker-compose.yml, the Dockerfile, .dockerignore and .env.example, read as an engine would.

No container engine runs in CI: these tests hold what the files promise, and .ci/run validates
docker-compose.yml against the Compose Specification's JSON schema.
"""

import re
from pathlib import Path

import pytest
import yaml
from django.conf import settings

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


def test_the_prune_service_prunes_daily_once_the_database_is_migrated(services):
    prune = services["prune"]
    command = command_of(prune)

    assert "manage.py prune_events;" in command
    assert "manage.py flushexpiredtokens" in command
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
    from news.serving import STOP_SECONDS

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
