"""The whole cycle against the real json-server 1.0.0-beta.15, the version its README documents:
string ids it picks itself, numbers of its file read as strings, no cascade of deletes.

json-server is installed with npm into testing/.json-server/ on first use. Without node or npm
these tests are skipped, unless JSON_SERVER_REQUIRED is set (CI sets it): then they fail.
"""

import os
import random
import signal
import time
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection

from fake_target.data import generate_dataset
from news.models import Comment, Post
from sync.client import TargetApiClient
from sync.models import EntitySyncState
from sync.syncing import SyncOptions, sync_changes
from testing.json_server import JsonServerMissing, running
from testing.processes import start_manage
from testing.sync import canonical_state, expected_target, pending_count

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def json_server_1(settings):
    settings.SYNC_RETRIES = 2
    settings.SYNC_BACKOFF_FACTOR = 0.01
    settings.SYNC_BACKOFF_MAX = 0.02
    posts, comments = generate_dataset(12, comments_per_post=2)
    try:
        with running("1.0", {"posts": posts, "comments": comments}) as server:
            yield server
    except JsonServerMissing as missing:
        if os.environ.get("JSON_SERVER_REQUIRED"):
            pytest.fail(f"json-server 1.0 is required here: {missing}")
        pytest.skip(f"json-server 1.0 cannot run here: {missing}")


@pytest.fixture
def json_server_1_with(settings):
    """json-server 1.0 serving the given posts; stopped after the test."""
    started = []

    def start(*posts: dict):
        try:
            context = running("1.0", {"posts": list(posts), "comments": []})
            server = context.__enter__()
        except JsonServerMissing as missing:
            if os.environ.get("JSON_SERVER_REQUIRED"):
                pytest.fail(f"json-server 1.0 is required here: {missing}")
            pytest.skip(f"json-server 1.0 cannot run here: {missing}")
        started.append(context)
        return server

    yield start
    for context in started:
        context.__exit__(None, None, None)


def sync(server, *, full: bool = False):
    with TargetApiClient(base_url=server.url, timeout=5.0, retries=2) as client:
        return sync_changes(client=client, options=SyncOptions(concurrency=3), full=full)


def assert_target_equals_database(server) -> None:
    state = server.state()
    assert canonical_state(state) == canonical_state(expected_target())
    assert len(state["posts"]) == Post.objects.count()  # no duplicate
    assert len(state["comments"]) == Comment.objects.count()


def change_things(rng: random.Random, counter: list[int]) -> None:
    """Creates (comments on new posts among them), edits and deletes through the ORM."""
    counter[0] += 1
    post = Post.objects.create(user_id=rng.randint(1, 5), title=f"new {counter[0]}", body="b")
    Comment.objects.create(post=post, name=f"on new {counter[0]}", email="n@x.io", body="c")
    posts = list(Post.objects.order_by("?")[:3])
    posts[0].title = f"edited {counter[0]}"
    posts[0].save()
    comment = Comment.objects.order_by("?").first()
    comment.body = f"edited {counter[0]}"
    comment.save()
    Comment.objects.filter(pk=Comment.objects.order_by("?").values("pk")[:1]).delete()
    if rng.random() < 0.5:
        posts[1].delete()  # and its comments


@pytest.mark.django_db
def test_the_whole_cycle_against_json_server_1(json_server_1):
    out = StringIO()
    call_command("import_initial_data", "--url", json_server_1.url, stdout=out)
    assert out.getvalue().startswith("Imported 12 posts and 24 comments")
    assert EntitySyncState.objects.filter(remote_id="1", entity_pk=1).count() == 2
    rng, counter = random.Random(3), [0]
    for _ in range(3):
        change_things(rng, counter)
        report = sync(json_server_1)
        assert report.ok, report.failed
        assert_target_equals_database(json_server_1)
    assert pending_count() == 0

    first, second = sync(json_server_1, full=True), sync(json_server_1, full=True)

    assert first.ok and second.ok
    assert (first.calls_made, second.calls_made) == (0, 0)
    assert_target_equals_database(json_server_1)


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="a subprocess cannot see the in-memory SQLite"
)
@pytest.mark.django_db(transaction=True)
def test_kill_9_rounds_against_json_server_1_end_equal_without_duplicates(json_server_1):
    call_command("import_initial_data", "--url", json_server_1.url, stdout=StringIO())
    rng, counter = random.Random(7), [0]
    killed = 0
    for _ in range(6):
        for _ in range(3):
            change_things(rng, counter)
        run = start_manage(
            "sync_changes", "--url", json_server_1.url, "--max-rps", "0", "--timeout", "3"
        )
        time.sleep(rng.uniform(0.3, 1.2))
        if run.poll() is None:
            run.send_signal(signal.SIGKILL)
            killed += 1
        run.wait(60)
    assert killed >= 2

    report = sync(json_server_1)

    assert report.ok, report.failed
    assert_target_equals_database(json_server_1)
    assert pending_count() == 0
    assert sync(json_server_1).calls_made == 0
    assert sync(json_server_1, full=True).calls_made == 0


@pytest.mark.django_db
@pytest.mark.parametrize("ident", [".", "..", "a/b", "a?b#c", " 5", "007"])
def test_ids_of_any_text_are_addressed_as_themselves(json_server_1_with, ident):
    server = json_server_1_with({"id": ident, "userId": 1, "title": "t", "body": "b"})
    call_command("import_initial_data", "--url", server.url, stdout=StringIO())
    post = Post.objects.get()
    post.title = "edited"
    post.save()

    report = sync(server)

    assert report.ok, report.failed
    assert server.state()["posts"] == [{"id": ident, "userId": 1, "title": "edited", "body": "b"}]
    post.delete()
    assert sync(server).ok
    assert server.state()["posts"] == []
