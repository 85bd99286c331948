"""The follower (`sync_changes --follow`) in a thread of the test process, on both databases:
changes delivered within a second, bursts merged, the run every SYNC_INTERVAL, the lock held for
its whole life, a target that is down, a lost lock, stopping, and a standby.

Real processes (kill -9, SIGTERM, a lost database) are in test_follow_processes.py.

On SQLite the test database is in memory, shared between threads, and a thread that touches a
table another thread is writing gets "table is locked" at once. So the tests write through
`committed()`, which tries again, and read the database only while the follower is idle: after
it reported the run they wait for (its reports come once the run recorded everything).
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import OperationalError, connection, transaction

from fake_target import FakeTarget
from sync.client import TargetApiClient
from sync.following import Follower, FollowOptions
from sync.locking import try_lock
from sync.models import ModelEvent, SyncRun
from sync.syncing import SyncOptions, SyncReport
from testing.ports import free_port
from testing.run_lock import lose_the_run_lock
from testing.sync import expected_target, pending_count, target_state, writes
from testing.waiting import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]

# Quick to react, so the tests stay short; each test changes what it is about.
FAST = {
    "interval": 60.0,
    "debounce": 0.05,
    "max_wait": 0.2,
    "backoff_max": 1.0,
    "standby_poll": 0.1,
    "poll_every": 0.1,
}
# A change reaches the target within a second: on PostgreSQL (LISTEN), with room on SQLite for
# a poll that met a locked table (the follower then reconnects after 1 s).
WITHIN = 1.0 if connection.vendor == "postgresql" else 3.0


@dataclass
class RunningFollower:
    follower: Follower
    thread: threading.Thread
    client: TargetApiClient
    lines: list[str] = field(default_factory=list)
    reports: list[SyncReport] = field(default_factory=list)

    def runs(self) -> int:
        return self.follower.runs

    def calls(self) -> int:
        """Calls of the runs that ended (and recorded what came of them)."""
        return sum(report.calls_made for report in list(self.reports))

    def wait_for_calls(self, count: int) -> None:
        wait_for(lambda: self.calls() >= count, timeout=10, what=f"{count} calls recorded")

    def stop(self, reason: str = "the test asked it to stop") -> None:
        self.follower.request_stop(reason)
        self.thread.join(10)
        assert not self.thread.is_alive(), "the follower did not stop within 10 s"
        self.client.close()


@pytest.fixture
def start_follower(fake_target):
    started: list[RunningFollower] = []

    def start(*, url: str | None = None, retries: int = 2, concurrency: int = 1, **follow):
        client = TargetApiClient(
            base_url=url or fake_target.url,
            timeout=2.0,
            retries=retries,
            backoff_factor=0.01,
            backoff_max=0.02,
        )
        running = RunningFollower(follower=None, thread=None, client=client)  # type: ignore[arg-type]
        running.follower = Follower(
            client=client,
            options=SyncOptions(concurrency=concurrency),
            follow=FollowOptions(**{**FAST, **follow}),
            say=running.lines.append,
            on_report=running.reports.append,
        )
        running.thread = threading.Thread(target=running.follower.run, daemon=True)
        running.thread.start()
        started.append(running)
        return running

    yield start
    for running in started:
        if running.thread.is_alive():
            running.stop()


def following(running: RunningFollower) -> RunningFollower:
    """Wait until the follower holds the lock and its catch-up run is done."""
    wait_for(lambda: running.runs() >= 1, timeout=10, what="the follower's first run")
    return running


def committed(change):
    """Make a change in one transaction; on SQLite, try again while a table is locked."""
    for attempt in range(100):
        try:
            with transaction.atomic():
                return change()
        except OperationalError as exc:
            if "locked" not in str(exc) or attempt == 99:
                raise
            time.sleep(0.02)


@contextmanager
def unannounced():
    """Changes logged without waking anyone: as if the notification was lost in a reconnect."""
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL session_replication_role = replica")  # no triggers
        yield


def test_a_follower_delivers_each_committed_change_within_a_second(
    start_follower, fake_target, make_post
):
    running = following(start_follower())

    post = committed(lambda: make_post(title="live"))
    created_in = wait_for(lambda: post.pk in fake_target.posts, timeout=5, what="the POST")
    running.wait_for_calls(1)
    post.title = "edited live"
    committed(post.save)
    edited_in = wait_for(
        lambda: fake_target.posts.get(post.pk, {}).get("title") == "edited live", timeout=5
    )
    running.wait_for_calls(2)
    pk = post.pk
    committed(post.delete)
    deleted_in = wait_for(lambda: pk not in fake_target.posts, timeout=5, what="the DELETE")
    running.wait_for_calls(3)

    assert max(created_in, edited_in, deleted_in) < WITHIN
    assert writes(fake_target) == [
        ("POST", "/posts"),
        ("PUT", f"/posts/{pk}"),
        ("DELETE", f"/posts/{pk}"),
    ]
    assert pending_count() == 0


def test_a_burst_of_changes_is_one_run_with_one_call_per_entity(
    start_follower, fake_target, make_post
):
    running = following(start_follower(debounce=0.5, max_wait=5.0))
    runs_before = running.runs()

    posts = [committed(lambda n=n: make_post(title=f"burst {n}")) for n in range(3)]
    for round_number in range(3):
        for post in posts:
            post.title = f"burst, edit {round_number}"
            committed(post.save)
    short_lived = committed(lambda: make_post(title="created and deleted in the burst"))
    committed(short_lived.delete)
    wait_for(lambda: running.runs() > runs_before, timeout=10, what="the burst's run")
    time.sleep(0.8)  # room for a second run, which must not come

    assert running.runs() == runs_before + 1
    report = running.reports[-1]
    assert (report.events_pending, report.calls_made, report.entities_synced) == (14, 3, 4)
    assert writes(fake_target) == [("POST", "/posts")] * 3
    assert target_state(fake_target) == expected_target()
    assert pending_count() == 0


def test_a_change_nobody_was_told_of_is_sent_by_the_run_every_interval(
    start_follower, fake_target, make_post
):
    running = following(start_follower(interval=1.5, poll_every=3600))
    time.sleep(0.3)  # wait for the catch-up run to be over (the interval counts from its start)
    with unannounced():
        post = make_post(title="nobody was told")

    took = wait_for(lambda: post.pk in fake_target.posts, timeout=5, what="the interval's run")
    running.wait_for_calls(1)

    assert 0.5 < took < 2.5
    assert running.runs() == 2
    assert pending_count() == 0


def test_a_run_started_beside_a_follower_exits_75_and_sends_nothing(
    start_follower, fake_target, make_post
):
    following(start_follower(debounce=5.0, max_wait=5.0))
    committed(make_post)
    out = StringIO()

    with pytest.raises(CommandError) as raised:
        call_command("sync_changes", "--url", fake_target.url, "--max-rps", "0", stdout=out)

    assert raised.value.returncode == 75
    assert str(raised.value).startswith("another sync_changes run holds the lock")
    assert out.getvalue() == ""
    assert fake_target.calls() == []


def test_while_the_target_is_down_the_follower_backs_off_then_delivers(start_follower, make_post):
    port = free_port()
    running = following(start_follower(url=f"http://127.0.0.1:{port}", retries=0, backoff_max=2))

    post = committed(lambda: make_post(title="sent once the target is back"))
    time.sleep(4)
    failed_runs = sum(1 for report in list(running.reports) if report.failed)
    with FakeTarget(port=port) as target:
        wait_for(lambda: post.pk in target.posts, timeout=5, what="delivery after the outage")
        running.wait_for_calls(1)
        posts_sent = len(target.calls("POST"))

    # Runs about 0, 1 and 3 s after the change (pauses of 1, then 2 s): backing off, not spinning.
    assert 2 <= failed_runs <= 4, failed_runs
    assert "The target is failing; next run in 2 s" in running.lines
    assert posts_sent == 1
    assert pending_count() == 0


def test_a_follower_that_loses_its_lock_takes_it_again_and_catches_up(
    start_follower, fake_target, make_post
):
    running = following(start_follower())

    lose_the_run_lock()
    post = committed(lambda: make_post(title="after the lock was lost"))
    wait_for(lambda: post.pk in fake_target.posts, timeout=5, what="the catch-up")
    running.wait_for_calls(1)

    assert "Lost the run lock; taking it again" in running.lines
    assert running.lines.count("Active: holding the run lock") == 2
    assert pending_count() == 0
    assert try_lock() is None, "the follower holds the lock again"


def test_asked_to_stop_it_lets_the_call_in_flight_finish_records_it_and_sends_no_other(
    start_follower, fake_target, seed
):
    posts, _ = seed(5)
    running = following(start_follower(concurrency=1))
    fake_target.latency = 0.5

    def edit_all() -> None:
        for post in posts:
            post.title = "edited"
            post.save()

    committed(edit_all)
    wait_for(lambda: fake_target.in_flight == 1, timeout=5, what="the first call in flight")

    running.stop("the test asked it to stop")

    assert writes(fake_target) == [("PUT", f"/posts/{posts[0].pk}")]
    assert fake_target.posts[posts[0].pk]["title"] == "edited"
    pending = set(ModelEvent.objects.pending().values_list("entity_pk", flat=True))
    assert pending == {post.pk for post in posts[1:]}
    run = SyncRun.objects.order_by("-id").first()
    assert (run.status, run.calls_updated) == (SyncRun.Status.PARTIAL, 1)
    assert "stopped: the test asked it to stop" in run.error_summary
    lock = try_lock()
    assert lock is not None, "the lock was not released"
    lock.release()


def test_a_standby_waits_for_the_lock_and_takes_over_when_the_active_one_stops(
    start_follower, fake_target, make_post
):
    active = following(start_follower())
    standby = start_follower()
    wait_for(lambda: standby.lines, timeout=5, what="the standby's first line")
    first = committed(lambda: make_post(title="sent by the active follower"))
    wait_for(lambda: first.pk in fake_target.posts, timeout=5)
    active.wait_for_calls(1)

    active.stop()
    took_over = wait_for(lambda: standby.runs() >= 1, timeout=5, what="the take-over")
    second = committed(lambda: make_post(title="sent by the standby"))
    wait_for(lambda: second.pk in fake_target.posts, timeout=5)
    standby.wait_for_calls(1)

    assert standby.lines[:2] == [
        "Standby: another process holds the run lock; taking over when it ends",
        "Active: holding the run lock, taken over",
    ]
    assert took_over < 1.0
    assert writes(fake_target) == [("POST", "/posts"), ("POST", "/posts")]
    assert pending_count() == 0
