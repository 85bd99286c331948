"""Shared fixtures: users, JWT-authenticated API clients, the fake target, the database guard,
and requests run in threads for race tests on PostgreSQL."""

import sys
import threading
import time
from collections.abc import Callable

import psycopg
import pytest
from django.conf import settings
from django.core.cache import cache
from django.db import connection, connections
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken


def pytest_cmdline_main(config) -> int | None:
    """Stop at once, with one line, when the test database server cannot be reached."""
    db = settings.DATABASES["default"]
    if config.option.help or db["ENGINE"] != "django.db.backends.postgresql":
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
    if settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
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
def is_postgres() -> bool:
    return connection.vendor == "postgresql"


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


def bearer_client(user) -> APIClient:
    """An API client that sends a real access token minted for `user`."""
    client = APIClient()
    token = RefreshToken.for_user(user).access_token
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


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


@pytest.fixture
def fake_target():
    """A JSONPlaceholder-like server on 127.0.0.1 (a free port), empty; see sync.fake_target."""
    from sync.fake_target import FakeTarget

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

WAIT_SECONDS = 10


class ThreadedRequest(threading.Thread):
    """One API request in its own thread, so on its own database connection."""

    def __init__(self, user, method: str, url: str, data=None) -> None:
        """`user` None sends no token."""
        super().__init__(daemon=True)
        self.user, self.method, self.url, self.data = user, method, url, data
        self.status: int | None = None
        self.body = b""

    def run(self) -> None:
        try:
            client = bearer_client(self.user) if self.user else APIClient()
            client.raise_request_exception = False
            response = getattr(client, self.method)(self.url, self.data)
            self.status, self.body = response.status_code, response.content
        finally:
            connections.close_all()


def raw_connection() -> psycopg.Connection:
    db = connection.settings_dict
    return psycopg.connect(
        dbname=db["NAME"],
        user=db.get("USER") or None,
        password=db.get("PASSWORD") or None,
        host=db.get("HOST") or None,
        port=db.get("PORT") or None,
    )


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def waiting_on_locks(monitor: psycopg.Connection) -> int:
    row = monitor.execute(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
    ).fetchone()
    return row[0]


def race_behind_row_lock(
    table: str, key: object, requests: list[ThreadedRequest], *, column: str = "id"
) -> None:
    """Lock one row, start the requests one by one, each queued behind the lock, then release.

    PostgreSQL grants a row lock to its waiters in turn, so the requests reach the row in the
    order given: a race made to happen every time rather than now and then.
    """
    with raw_connection() as blocker, raw_connection() as monitor:
        monitor.autocommit = True
        blocker.execute(f"SELECT 1 FROM {table} WHERE {column} = %s FOR UPDATE", [key])
        for queued, request in enumerate(requests, start=1):
            request.start()
            wait_until(lambda n=queued: waiting_on_locks(monitor) >= n, f"{request.method} to wait")
        blocker.rollback()
    for request in requests:
        request.join(WAIT_SECONDS)
        assert not request.is_alive(), f"{request.method} {request.url} did not finish"
