"""A full run (`--full`): the database's snapshot diffed with what the target holds, made equal
with the fewest calls; what it does with remote ids, and with changes committed while it sends.

What `sync_changes --full` prints is in test_sync_changes.py; a full run killed, in
test_crashes.py; full runs on targets of other kinds, in test_sync_targets.py.
"""

import threading
import time

import pytest
from django.db import OperationalError, connections, transaction

from news.models import Post
from sync.models import ModelEvent
from sync.planner import EntityKey, Kind
from sync.syncing import outcomes
from testing.background import InBackground
from testing.sync import (
    expected_target,
    post_record,
    state_of,
    target_state,
    writes,
)
from testing.waiting import wait_for

pytestmark = [pytest.mark.django_db, pytest.mark.timeout(60)]


# --- Remote ids ----------------------------------------------------------------------------------


def key_of(obj):

    return EntityKey(Kind.POST if isinstance(obj, Post) else Kind.COMMENT, obj.pk)


def test_full_forgets_only_the_mapping_of_what_it_deletes(fake_target, make_post, sync):
    post = make_post(title="mapped elsewhere")
    remote_id = post.pk + 1000
    outcomes.upsert_states(
        [outcomes.delivered_state(key_of(post), post_record(post, remote_id=remote_id))],
        outcomes.DELIVERED_FIELDS,
    )
    post.save()  # a pending change, so a full run has an event to settle
    extra = {"id": post.pk, "userId": 9, "title": "extra", "body": "not ours"}
    fake_target.load(posts=[post_record(post, remote_id=remote_id), extra], comments=[])

    assert sync(full=True).ok

    assert writes(fake_target) == [("DELETE", f"/posts/{post.pk}")]
    assert state_of(post).remote_id == remote_id
    post.title = "edited after the full run"
    post.save()
    fake_target.reset_log()
    assert sync().ok
    assert writes(fake_target) == [("PUT", f"/posts/{remote_id}")]
    assert target_state(fake_target) == expected_target()


def test_full_keys_rows_by_their_ids_on_the_target_without_overwriting_each_other(
    assigning_target, make_post, sync
):
    first = make_post(title="first")
    assert sync().ok
    taken = state_of(first).remote_id  # the target's own choice
    second = Post.objects.create(id=taken, user_id=1, title="second", body="")
    assigning_target.reset_log()

    report = sync(full=True)

    assert report.ok, report.failed
    assert target_state(assigning_target) == expected_target()  # the target's own are gone
    assert state_of(first).remote_id == taken
    assert state_of(second).remote_id not in {None, taken}
    assert [w for w in writes(assigning_target) if w[0] != "DELETE"] == [("POST", "/posts")]


# --- Changes committed while it sends are left for the next run ----------------------------------


def made_beside_a_reader(make):
    """`make()` in a transaction of its own, while the run reads. On SQLite the suite's database
    is in memory with a shared cache, where a write to a table another connection is still
    reading fails at once ("database table is locked") instead of waiting as it does on a
    database file: tried again until the run's read is over."""
    deadline = time.monotonic() + 10
    while True:
        try:
            with transaction.atomic():
                return make()
        except OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


@pytest.mark.django_db(transaction=True)
def test_a_row_created_while_a_full_run_sends_is_left_for_the_next_run_and_sent_once(
    fake_target, edited_posts, make_post, sync
):
    edited_posts(8, title="changed")
    fake_target.load(posts=[], comments=[])  # the target lost everything: eight creates
    fake_target.latency = 0.05

    runner = InBackground(lambda: sync(full=True))
    wait_for(lambda: len(writes(fake_target)) >= 2, what="the full run's first creates")
    late = made_beside_a_reader(lambda: make_post(title="created while the full run sends"))

    assert runner.join(20).ok
    assert late.pk not in fake_target.posts
    assert list(ModelEvent.objects.pending().values_list("entity_pk", flat=True)) == [late.pk]
    fake_target.latency = 0
    fake_target.reset_log()
    assert sync().ok
    assert writes(fake_target) == [("POST", "/posts")]
    assert target_state(fake_target) == expected_target()


@pytest.mark.postgres  # SQLite serialises writers: ids always commit in order there
@pytest.mark.django_db(transaction=True)
def test_a_full_run_leaves_pending_a_change_committed_late_under_an_older_event_id(
    fake_target, make_post, sync
):
    """A transaction that took its event id before the run started and commits during it."""

    make_post(title="before")  # so the late event id is not the newest pending one
    opened, run_started, committed = threading.Event(), threading.Event(), threading.Event()

    def slow_writer() -> None:
        try:
            with transaction.atomic():
                Post.objects.create(user_id=1, title="committed late")
                opened.set()
                run_started.wait(10)
            committed.set()
        finally:
            connections.close_all()

    writer = threading.Thread(target=slow_writer)
    writer.start()
    assert opened.wait(5)
    make_post(title="newest")  # its event id is the run's horizon
    fake_target.latency = 0.05

    def commit_once_the_run_has_read_the_database() -> bool:
        if fake_target.calls("GET", "/posts"):
            run_started.set()
        return committed.is_set()

    runner = InBackground(lambda: sync(full=True))
    wait_for(commit_once_the_run_has_read_the_database, what="the late commit")
    writer.join(5)
    report = runner.join(20)

    late = Post.objects.get(title="committed late")
    on_target = late.pk in fake_target.posts
    event_pending = ModelEvent.objects.pending().filter(entity_pk=late.pk).exists()
    assert report.ok
    assert on_target or event_pending, "the late change was marked synced but never sent"
    fake_target.latency = 0
    sync()
    assert target_state(fake_target) == expected_target()
