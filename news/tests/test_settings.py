"""Settings read from the environment fail at start, naming the variable, when they are wrong."""

import json
import os
import subprocess
import sys

import pytest
from django.conf import settings

from testing import processes


def run_manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    """manage.py in a clean environment: only PATH and the variables given."""
    return processes.run_manage(*args, clean=True, **env)


def run_python(code: str, tmp_path, **env: str) -> subprocess.CompletedProcess:
    """Python in the project with Django's settings and a clean environment."""
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=settings.BASE_DIR,
        env={
            "PATH": os.environ.get("PATH", ""),
            "DJANGO_SETTINGS_MODULE": "news_project.settings",
            "DATABASE_URL": f"sqlite:///{tmp_path / 'unused.sqlite3'}",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_without_secret_key_and_debug_off_the_start_fails_naming_it():
    result = run_manage("check")

    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr


def test_with_debug_on_a_development_key_is_used():
    result = run_manage("check", DJANGO_DEBUG="1")

    assert result.returncode == 0, result.stderr


def test_with_a_secret_key_debug_off_starts():
    result = run_manage("check", DJANGO_SECRET_KEY="a-long-random-production-secret")

    assert result.returncode == 0, result.stderr


def test_malformed_throttle_rate_fails_naming_it():
    result = run_manage("check", DJANGO_DEBUG="1", JWT_TOKEN_THROTTLE_RATE="ten a minute")

    assert result.returncode != 0
    assert "JWT_TOKEN_THROTTLE_RATE" in result.stderr


def test_unknown_cache_choice_fails_naming_it():
    result = run_manage("check", DJANGO_DEBUG="1", DJANGO_CACHE="memcached")

    assert result.returncode != 0
    assert "DJANGO_CACHE" in result.stderr


# --- DJANGO_HTTPS --------------------------------------------------------------------------------

PRODUCTION = {
    "DJANGO_SECRET_KEY": "a-long-random-production-secret-0123456789-abcdefghijklmnop",
    "DJANGO_ALLOWED_HOSTS": "news.example.com,127.0.0.1",
}


def test_with_https_on_check_deploy_is_clean():
    result = run_manage(
        "check", "--deploy", "--fail-level", "WARNING", DJANGO_HTTPS="1", **PRODUCTION
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_without_https_check_deploy_names_what_is_missing():
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION)

    assert result.returncode != 0
    for check in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert check in result.stderr


SHOW_LINKS = """
import django, json
django.setup()
from django.test import Client
client = Client(HTTP_HOST="news.example.com")
proxied = client.get("/news/", HTTP_X_FORWARDED_PROTO="https")
plain = client.get("/news/")
health = client.get("/health/")
print(json.dumps([proxied.status_code, proxied.json(), plain.status_code, plain.get("Location"),
                  health.status_code, health.get("Strict-Transport-Security")]))
"""


def test_with_https_on_links_are_https_behind_the_proxy_and_plain_http_is_redirected(tmp_path):
    result = run_python(SHOW_LINKS, tmp_path, DJANGO_HTTPS="1", **PRODUCTION)

    assert result.returncode == 0, result.stderr
    status, links, plain_status, location, health_status, hsts = json.loads(result.stdout)
    assert status == 200
    assert links["posts"] == "https://news.example.com/news/posts/"
    assert (plain_status, location) == (301, "https://news.example.com/news/")
    assert health_status == 200  # the container's health check calls plain http
    assert hsts is None  # sent on https answers only


@pytest.mark.parametrize(
    "variable",
    [
        "DJANGO_HTTPS",
        "DJANGO_HSTS_SECONDS",
        "DJANGO_ADMIN_LOGIN_ATTEMPTS",
        "DJANGO_ADMIN_LOCKOUT_MINUTES",
    ],
)
def test_a_malformed_security_setting_fails_naming_it(variable):
    result = run_manage("check", DJANGO_DEBUG="1", **{variable: "lots"})

    assert result.returncode != 0
    assert variable in result.stderr


# --- The database cache --------------------------------------------------------------------------


def test_with_the_database_cache_and_no_cache_table_the_start_fails_naming_the_fix(tmp_path):
    database = {"DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}", "DJANGO_CACHE": "database"}

    missing = run_python("import news_project.wsgi", tmp_path, DJANGO_DEBUG="1", **database)
    run_manage("createcachetable", DJANGO_DEBUG="1", **database)
    present = run_python("import news_project.wsgi", tmp_path, DJANGO_DEBUG="1", **database)

    assert missing.returncode != 0
    assert "ImproperlyConfigured" in missing.stderr
    assert "manage.py createcachetable" in missing.stderr.strip().splitlines()[-1]
    assert present.returncode == 0, present.stderr


def test_with_the_local_memory_cache_the_start_needs_no_table(tmp_path):
    result = run_python(
        "import news_project.wsgi",
        tmp_path,
        DJANGO_DEBUG="1",
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
    )

    assert result.returncode == 0, result.stderr


# --- The live sync and monitoring -----------------------------------------------------------


@pytest.mark.parametrize(
    "name, value",
    [
        ("SYNC_INTERVAL", "0"),
        ("SYNC_INTERVAL", "a minute"),
        ("SYNC_FOLLOW_DEBOUNCE", "-1"),
        ("SYNC_FOLLOW_DEBOUNCE", "nan"),
        ("SYNC_FOLLOW_BACKOFF_MAX", "0.5"),
        ("SYNC_HEALTH_MAX_AGE", "five minutes"),
        ("METRICS_TOKEN", "two words"),
    ],
)
def test_a_malformed_follower_or_monitoring_setting_fails_naming_it(name, value):
    result = run_manage("check", DJANGO_DEBUG="1", **{name: value})

    assert result.returncode == 2
    assert result.stderr.startswith(f"Error: {name} must be")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "name, value",
    [
        ("SYNC_EVENT_RETENTION_DAYS", "99999999999"),
        ("SYNC_RUN_RETENTION_DAYS", "100000000"),
        ("JWT_ACCESS_MINUTES", "99999999999"),
        ("JWT_REFRESH_DAYS", "99999999999"),
        ("DJANGO_ADMIN_LOCKOUT_MINUTES", "99999999999"),
        ("NEWS_NEW_POST_USER_ID", "99999999999"),
        ("FAKE_API_TIMEOUT", "1e300"),
        ("SYNC_TIME_BUDGET", "1e300"),
        ("DJANGO_LOG_LEVEL", "LOUD"),
    ],
)
def test_a_value_past_what_it_can_mean_fails_naming_it(name, value):
    """Too large to be a date, a time to wait or a database integer; a log level that is none:
    each would otherwise end in a traceback, or a 500 on a login, far from where it was set."""
    result = run_manage("check_env", DJANGO_DEBUG="1", **{name: value})

    assert result.returncode == 2
    assert result.stderr.startswith(f"Error: {name} must be")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_a_run_lock_file_in_a_directory_that_does_not_exist_fails_naming_it(tmp_path):
    """On SQLite the run lock is that file: no run could take it."""
    lock = tmp_path / "missing" / "sync.lock"
    result = run_manage(
        "check_env",
        DJANGO_DEBUG="1",
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        SYNC_LOCK_FILE=str(lock),
    )

    assert result.returncode == 2
    assert result.stderr == (
        f"Error: SYNC_LOCK_FILE must be in a directory that exists, got {str(lock)!r}\n"
    )


def test_a_run_lock_file_that_is_a_directory_fails_naming_it(tmp_path):
    result = run_manage(
        "check_env",
        DJANGO_DEBUG="1",
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        SYNC_LOCK_FILE=str(tmp_path),
    )

    assert result.returncode == 2
    assert result.stderr == (
        f"Error: SYNC_LOCK_FILE must name a file, not a directory, got {str(tmp_path)!r}\n"
    )


def test_a_run_lock_file_that_cannot_be_opened_fails_the_run_in_one_line(tmp_path):
    """A directory this user may not write to, say: named, not a traceback."""
    database = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    assert run_manage("migrate", "-v0", DJANGO_DEBUG="1", DATABASE_URL=database).returncode == 0
    lock = tmp_path / "sync.lock"
    lock.symlink_to(tmp_path / "missing" / "sync.lock")  # where no file can be made

    result = run_manage(
        "sync_changes",
        "--url",
        "http://127.0.0.1:9",
        DJANGO_DEBUG="1",
        DATABASE_URL=database,
        SYNC_LOCK_FILE=str(lock),
    )

    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"CommandError: Sync failed: cannot open the run lock file {lock} (SYNC_LOCK_FILE): "
        "No such file or directory"
    ]


def test_a_maximum_wait_shorter_than_the_debounce_fails_naming_both():
    result = run_manage(
        "check", DJANGO_DEBUG="1", SYNC_FOLLOW_DEBOUNCE="1", SYNC_FOLLOW_MAX_WAIT="0.5"
    )

    assert result.returncode != 0
    assert (
        "SYNC_FOLLOW_MAX_WAIT must be at least SYNC_FOLLOW_DEBOUNCE (1), got 0.5" in result.stderr
    )


def test_follower_and_monitoring_settings_that_are_well_formed_start():
    result = run_manage(
        "check",
        DJANGO_DEBUG="1",
        SYNC_INTERVAL="30",
        SYNC_FOLLOW_DEBOUNCE="0.1",
        SYNC_FOLLOW_MAX_WAIT="1",
        SYNC_FOLLOW_BACKOFF_MAX="10",
        SYNC_HEALTH_MAX_AGE="120",
        METRICS_TOKEN="a-long-random-scrape-token",
    )

    assert result.returncode == 0, result.stderr
