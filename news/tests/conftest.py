"""Fixtures for the API tests."""

import json

import pytest

from testing.clients import asgi_get, wsgi_get
from testing.redis_server import RedisServer


def body_of(response) -> bytes:
    """A response's body, a stream's (`?all=true` over more rows than a chunk) read to its end."""
    return b"".join(response.streaming_content) if response.streaming else response.content


@pytest.fixture
def streamed_json():
    """Decode an `?all=true` answer: one array, streamed when it is longer than a chunk."""

    def decode(response):
        assert response["Content-Type"] == "application/json"
        return json.loads(body_of(response))

    return decode


@pytest.fixture
def redis_with_snapshots(settings, tmp_path):
    """The read cache on a Redis of the test's own that keeps snapshots (testing/redis_server.py):
    `save()` takes one, `restart()` brings the server back from it."""
    server = RedisServer(tmp_path)
    server.start()
    settings.REDIS_URL = server.url
    yield server
    server.stop()


@pytest.fixture(params=["wsgi", "asgi"])
def served(request, monkeypatch):
    """The test twice, its module's `get` each time another application: the WSGI one, and the
    ASGI one `serve` runs, which answers a hit on its event loop. Loaded before the test runs:
    loading news_project.wsgi sets Django up again, logging included, which would take the
    handler of pytest's caplog away from a test that loads it first."""
    import news_project.wsgi  # noqa: F401

    monkeypatch.setattr(request.module, "get", {"wsgi": wsgi_get, "asgi": asgi_get}[request.param])
    return request.param


@pytest.fixture(autouse=True)
def nothing_kept():
    """No answer kept without Redis (news/cache/snapshots.py) outlives its test."""
    from news.cache import snapshots

    snapshots.kept.answers.clear()
    snapshots.kept.size = 0
    snapshots.kept.paused_until = 0.0
    yield
    snapshots.kept.answers.clear()
    snapshots.kept.size = 0
    if snapshots.kept.reader is not None:
        snapshots.kept.reader[1].close()  # its loop is gone: asgi_get runs one a request
        snapshots.kept.reader = None
