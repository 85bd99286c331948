"""Shared fixtures: users, JWT-authenticated API clients, the fake target, the database guard,
and requests run in threads for race tests on PostgreSQL."""

import os
import sys

import psycopg
import pytest
import redis
from django.conf import settings
from django.core.cache import cache
from rest_framework.test import APIClient

from testing.clients import bearer_client


def pytest_cmdline_main(config) -> int | None:
    """Stop at once, with one line, when the test database server cannot be reached."""
    db = settings.DATABASES["default"]
    if config.option.help or not db["ENGINE"].endswith(".postgresql"):
        return None
    try:
        psycopg.connect(
            dbname="postgres",
            user=db.get("USER") or None,
            password=db.get("PASSWORD") or None,
            host=db.get("HOST") or None,
            port=db.get("PORT") or None,
            connect_timeout=3,
        ).close()
    except psycopg.OperationalError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        # Returning an exit code here stops pytest before it prints anything else.
        sys.stderr.write(
            f"PostgreSQL is not reachable at {db.get('HOST')}:{db.get('PORT')} ({reason}). "
            "Start it, or run the suite on SQLite: make test DATABASE_URL=sqlite:///test.sqlite3\n"
        )
        return 3
    return None


def pytest_collection_modifyitems(config, items) -> None:
    if settings.DATABASES["default"]["ENGINE"].endswith(".postgresql"):
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL (DATABASE_URL points elsewhere)")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _clear_cache():
    """Throttle counters live in the cache: every test starts with none."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """A real hash costs 0.3 s a user; the suite checks access rules, not hash strength."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def make_post(db):
    """Posts made directly in the database (their change events logged as usual)."""
    from testing.rows import make_post

    return make_post


@pytest.fixture
def make_comment(db):
    from testing.rows import make_comment

    return make_comment


@pytest.fixture
def make_user(django_user_model):
    def make(username: str = "alice", *, password: str = "correct-horse-battery", **extra):
        return django_user_model.objects.create_user(username=username, password=password, **extra)

    return make


@pytest.fixture
def user(make_user):
    return make_user("alice")


@pytest.fixture
def other_user(make_user):
    return make_user("bob")


@pytest.fixture
def staff_user(make_user):
    return make_user("carol", is_staff=True)


@pytest.fixture
def anon_client() -> APIClient:
    return APIClient()


@pytest.fixture
def api_client(user) -> APIClient:
    return bearer_client(user)


@pytest.fixture
def other_client(other_user) -> APIClient:
    return bearer_client(other_user)


@pytest.fixture
def staff_client(staff_user) -> APIClient:
    return bearer_client(staff_user)


# The Redis database the cache tests use: its keys under the cache's prefix are deleted before
# and after each of them. TEST_REDIS_URL moves it.
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/14")


@pytest.fixture
def read_cache(settings):
    """The read cache on (news/cache/), on the Redis database of TEST_REDIS_URL, holding
    nothing of this database before and after the test. Skips the test when Redis does not
    answer."""
    from news.cache import get_store

    settings.REDIS_URL = TEST_REDIS_URL
    store = get_store()
    try:
        store.client.ping()
    except redis.RedisError:
        pytest.skip(f"needs Redis at {TEST_REDIS_URL} (TEST_REDIS_URL)")

    def forget_entries() -> None:
        # All but the key naming Redis's run (news.cache.store.RENEW): as it is, Redis has not
        # come back from a snapshot, and no connection opened later drops what a test stored.
        for key in store.client.scan_iter(match=f"{store.prefix}*", count=1000):
            if key != f"{store.prefix}run".encode():
                store.client.delete(key)

    forget_entries()
    yield store
    forget_entries()


@pytest.fixture
def fake_target():
    """A JSONPlaceholder-like server on 127.0.0.1 (a free port), empty; see fake_target."""
    from fake_target import FakeTarget

    with FakeTarget() as server:
        yield server


@pytest.fixture
def target_client(fake_target):
    """A TargetApiClient for the fake target that gives up fast: short timeout, tiny backoff."""
    from sync.client import TargetApiClient

    with TargetApiClient(
        base_url=fake_target.url, timeout=2.0, retries=2, backoff_factor=0.01, backoff_max=0.02
    ) as client:
        yield client


# --- Races on PostgreSQL ----------------------------------------------------------------------
