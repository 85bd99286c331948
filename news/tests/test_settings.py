"""Settings read from the environment fail at start, naming the variable, when they are wrong."""

import subprocess

import pytest

from news.tests import support


def run_manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    """manage.py in a clean environment: only PATH and the variables given."""
    return support.run_manage(*args, clean=True, **env)


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

    assert result.returncode != 0
    assert f"ImproperlyConfigured: {name} must be" in result.stderr


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
