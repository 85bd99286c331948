"""The make targets of the everyday commands share make run's defaults, kept in one place."""

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

ROOT = Path(settings.BASE_DIR)
VENV = Path(sys.executable).parent.parent  # the suite's own virtualenv, as .ci/run's $VENV
MANAGE = f"{VENV}/bin/python manage.py"


def recipe(target: str, *variables: str, **environment: str) -> list[str]:
    """The commands `make TARGET` would run (make -n), without the install step's."""
    result = subprocess.run(
        ["make", "--no-print-directory", "-n", target, f"VENV={VENV}", *variables],
        cwd=ROOT,
        env={"PATH": os.environ["PATH"], **environment},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    return [line for line in result.stdout.splitlines() if "pip install" not in line]


def main_command(target: str, *variables: str, **environment: str) -> str:
    return recipe(target, *variables, **environment)[-1].strip()


@pytest.mark.parametrize(
    ("target", "command"),
    [
        ("run", "runserver 127.0.0.1:8000"),
        ("import", "import_initial_data --url 'http://127.0.0.1:3000'"),
        ("superuser", "createsuperuser --username admin --email admin@example.com"),
        ("sync", "sync_changes --url 'http://127.0.0.1:3000'"),
        ("follow", "sync_changes --follow --url 'http://127.0.0.1:3000'"),
        ("status", "sync_status"),
        ("prune", "prune_events"),
        ("reset", "flush"),
    ],
)
def test_every_everyday_target_runs_manage_py_with_the_defaults_of_make_run(target, command):
    assert main_command(target) == f"DJANGO_DEBUG=1 {MANAGE} {command}"


@pytest.mark.parametrize("target", ["import", "superuser", "sync", "follow", "status", "prune"])
def test_the_everyday_targets_migrate_first_quietly(target):
    steps = recipe(target)

    assert f"DJANGO_DEBUG=1 {MANAGE} migrate --noinput --verbosity 0" in steps


def test_the_fake_target_and_the_target_url_follow_one_port():
    port = "TARGET_PORT=3999"

    assert main_command("fake-target", port) == "python3 -m fake_target --port 3999"
    assert main_command("import", port).endswith("--url 'http://127.0.0.1:3999'")
    assert main_command("sync", port).endswith("--url 'http://127.0.0.1:3999'")


def test_the_environment_and_the_command_line_override_the_defaults():
    assert main_command("run", PORT="18050").endswith("runserver 127.0.0.1:18050")
    assert main_command("status", DJANGO_DEBUG="0").startswith("DJANGO_DEBUG=0 ")
    dry_run = main_command("sync", "ARGS=--dry-run")
    assert dry_run.endswith("--url 'http://127.0.0.1:3000' --dry-run")
    assert main_command("import", "TARGET_URL=http://target.example").endswith(
        "--url 'http://target.example'"
    )


def test_superuser_asks_nothing_when_the_password_is_in_the_environment():
    assert main_command("superuser", DJANGO_SUPERUSER_PASSWORD="secret").endswith(" --noinput")
    assert not main_command("superuser").endswith(" --noinput")


# --- A database out of reach ------------------------------------------------------------------


@pytest.mark.parametrize(
    "target", ["run", "import", "superuser", "sync", "follow", "status", "prune", "reset", "test"]
)
def test_every_documented_target_with_the_database_out_of_reach_says_so_in_one_line(target):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"postgres://news:s3cret@127.0.0.1:{port}/news"

    result = subprocess.run(
        ["make", "--no-print-directory", target, f"VENV={VENV}", "PYTEST_ARGS=-p no:cacheprovider"],
        cwd=ROOT,
        env={"PATH": os.environ["PATH"], "DATABASE_URL": url, "DJANGO_ENV_FILE": ""},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )

    *said, by_make = result.stderr.splitlines()
    if target == "test":  # the suite's own check, before it starts
        assert said == [
            f"PostgreSQL is not reachable at 127.0.0.1:{port} (connection failed: connection to "
            f'server at "127.0.0.1", port {port} failed: Connection refused). Start it, or run '
            "the suite on SQLite: make test DATABASE_URL=sqlite:///test.sqlite3"
        ]
    else:
        assert said == [
            f"Error: cannot reach the database postgres://news:***@127.0.0.1:{port}/news "
            "(DATABASE_URL): Connection refused (is the server running on that host and "
            "accepting TCP/IP connections?)"
        ]
    # make's own line, which names the command's exit status (README: Commands).
    step = "migrate" if target == "run" else target  # make run: its migrate step fails
    assert re.fullmatch(rf"make: \*\*\* \[Makefile:\d+: {step}\] Error [13]", by_make)
    assert result.returncode == 2
    assert "Traceback" not in result.stdout + result.stderr


def test_the_readme_quotes_the_line_make_adds_as_make_writes_it():
    readme = (ROOT / "README.md").read_text()
    quoted = re.search(r"`make: \*\*\* \[Makefile:(\d+): sync\] Error 75`", readme)
    makefile = (ROOT / "Makefile").read_text().splitlines()

    assert quoted, "README names no make line"
    assert "$(MANAGE) sync_changes --url" in makefile[int(quoted[1]) - 1]


# --- A target behind a password --------------------------------------------------------------


@pytest.mark.parametrize("password", ["s3cret-word", "it's;s3cret&(x)"])
@pytest.mark.parametrize("target", ["help", "import", "sync"])
def test_make_never_shows_the_password_in_the_target_url(target, password, tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        url = f"http://sync:{password}@127.0.0.1:{probe.getsockname()[1]}"

    result = subprocess.run(
        ["make", "--no-print-directory", target, f"VENV={VENV}", f"TARGET_URL={url}"],
        cwd=ROOT,
        env={
            "PATH": os.environ["PATH"],
            "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
            "DJANGO_ENV_FILE": "",
            "SYNC_RETRIES": "0",
        },
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )

    shown = result.stdout + result.stderr
    assert "s3cret" not in shown, shown
    if target == "help":
        assert "sync_changes to http://sync:***@127.0.0.1:" in result.stdout
    elif target == "import":  # nothing listens there: one line, the URL without its password
        assert "GET http://127.0.0.1:" in result.stderr and result.returncode == 2
    else:  # nothing to send
        assert result.stdout.startswith("Synced 0 entities") and result.returncode == 0


def test_reset_asks_nothing_with_noinput_as_readme_says():
    assert main_command("reset") == f"DJANGO_DEBUG=1 {MANAGE} flush"
    assert main_command("reset", "ARGS=--noinput") == f"DJANGO_DEBUG=1 {MANAGE} flush --noinput"
