"""manage.py: settings from the environment, then .env; a bad setting is one line, no traceback."""

import os

import pytest
from django.conf import settings
from dotenv import dotenv_values

from news.tests import support
from news_project import env


def run_manage(*args: str, **variables: str):
    """manage.py in a clean environment: PATH, no .env, and the variables given."""
    return support.run_manage(*args, clean=True, **variables)


def assert_one_line_error(result, *, naming: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ") and naming in lines[0], lines[0]
    assert "Traceback" not in result.stdout + result.stderr


COMMANDS = [
    ("check",),
    ("migrate",),
    ("runserver", "127.0.0.1:18099"),
    ("createsuperuser", "--username", "admin"),
    ("import_initial_data",),
    ("sync_changes", "--dry-run"),
    ("sync_status",),
    ("prune_events",),
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda command: command[0])
def test_without_a_secret_key_any_command_stops_with_one_line(command, tmp_path):
    result = run_manage(*command, DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}")

    assert_one_line_error(result, naming="DJANGO_SECRET_KEY must be set")
    assert not (tmp_path / "db.sqlite3").exists()


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DJANGO_DEBUG", "perhaps"),
        ("DATABASE_URL", "nosuchdb://here"),
        ("SYNC_MAX_ATTEMPTS", "many"),
        ("SYNC_EVENT_RETENTION_DAYS", "-1"),
        ("SYNC_RUN_RETENTION_DAYS", "a month"),
        ("FAKE_API_URL", "ftp://example.com"),
    ],
)
def test_an_invalid_setting_stops_any_command_with_one_line_naming_it(variable, value):
    result = run_manage("sync_status", **{"DJANGO_DEBUG": "1", variable: value})

    assert_one_line_error(result, naming=variable)


def env_example() -> dict[str, str | None]:
    return dotenv_values(settings.BASE_DIR / ".env.example")


def test_env_example_ships_the_placeholder_secret_key_that_is_refused():
    assert env_example()["DJANGO_SECRET_KEY"] == env.ENV_EXAMPLE_SECRET_KEY


@pytest.mark.parametrize("debug", ["0", "1"])
def test_the_placeholder_secret_key_of_env_example_is_refused_in_one_line(debug, tmp_path):
    copied = {name: value for name, value in env_example().items() if value is not None}
    copied.update(DJANGO_DEBUG=debug, DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}")

    result = run_manage("check", **copied)

    assert_one_line_error(result, naming="placeholder of .env.example")


# --- .env ----------------------------------------------------------------------------------------

SHOW_DATABASE = (
    "shell",
    "--no-imports",
    "-c",
    "from django.conf import settings; print(settings.DATABASES['default']['NAME'])",
)


def test_manage_py_reads_the_env_file(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text(f"DJANGO_DEBUG=1\nDATABASE_URL=sqlite:///{tmp_path / 'from-env-file.db'}\n")

    migrated = run_manage("migrate", "--noinput", DJANGO_ENV_FILE=str(env_file))
    shown = run_manage(*SHOW_DATABASE, DJANGO_ENV_FILE=str(env_file))

    assert migrated.returncode == 0, migrated.stderr
    assert (tmp_path / "from-env-file.db").is_file()
    assert shown.stdout.strip() == str(tmp_path / "from-env-file.db")


def test_the_environment_wins_over_the_env_file(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text(f"DJANGO_DEBUG=1\nDATABASE_URL=sqlite:///{tmp_path / 'file.db'}\n")

    shown = run_manage(
        *SHOW_DATABASE,
        DJANGO_ENV_FILE=str(env_file),
        DATABASE_URL=f"sqlite:///{tmp_path / 'environment.db'}",
    )

    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip() == str(tmp_path / "environment.db")


def test_an_empty_env_file_name_reads_no_file(tmp_path, monkeypatch):
    monkeypatch.setattr(env, "PROJECT_DIR", tmp_path)
    (tmp_path / ".env").write_text("NEWS_ENV_FILE_PROBE=read\n")
    monkeypatch.setenv("DJANGO_ENV_FILE", "")

    assert env.load_env_file() is None
    assert "NEWS_ENV_FILE_PROBE" not in os.environ


def test_by_default_the_env_file_is_the_projects(tmp_path, monkeypatch):
    monkeypatch.setattr(env, "PROJECT_DIR", tmp_path)
    (tmp_path / ".env").write_text("NEWS_ENV_FILE_PROBE=read\n")
    monkeypatch.delenv("DJANGO_ENV_FILE", raising=False)
    try:
        assert env.load_env_file() == tmp_path / ".env"
        assert os.environ["NEWS_ENV_FILE_PROBE"] == "read"
    finally:
        os.environ.pop("NEWS_ENV_FILE_PROBE", None)


def test_without_an_env_file_the_defaults_apply(tmp_path, monkeypatch):
    monkeypatch.setenv("DJANGO_ENV_FILE", str(tmp_path / "missing.env"))

    assert env.load_env_file() is None
