"""Settings read from the environment fail at start, naming the variable, when they are wrong."""

import subprocess

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
