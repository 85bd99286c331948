"""`manage.py sync_changes --follow` as real processes: a standby that takes over from a follower
killed with kill -9, SIGTERM and SIGINT, a cron run beside a follower, and a lost database.

PostgreSQL only: a subprocess cannot see the in-memory SQLite test database.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time

import pytest
from django.db import connection, transaction

from sync.locking import try_lock
from sync.models import EntitySyncState, ModelEvent, SyncRun
from testing.processes import run_manage, start_manage
from testing.sync import expected_target, make_workload, pending_count, target_state, writes
from testing.waiting import wait_for

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(90),
]


class FollowerProcess:
    """A `sync_changes --follow` process whose output lines are collected as they come."""

    def __init__(self, url: str, *args: str, **env: str) -> None:
        self.process: subprocess.Popen = start_manage(
            "sync_changes",
            "--follow",
            "--url",
            url,
            "--max-rps",
            "0",
            *args,
            SYNC_RETRIES="1",
            SYNC_BACKOFF_FACTOR="0.01",
            SYNC_BACKOFF_MAX="0.02",
            SYNC_FOLLOW_DEBOUNCE="0.05",
            SYNC_FOLLOW_MAX_WAIT="0.2",
            **env,
        )
        self.lines: list[str] = []
        self.errors: list[str] = []
        self._readers = [
            threading.Thread(target=self._read, args=(stream, lines), daemon=True)
            for stream, lines in (
                (self.process.stdout, self.lines),
                (self.process.stderr, self.errors),
            )
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, stream, lines: list[str]) -> None:
        for line in stream:
            lines.append(line.rstrip("\n"))

    def wait_for_line(self, start: str, *, timeout: float = 15, count: int = 1) -> float:
        try:
            return wait_for(
                lambda: sum(line.startswith(start) for line in self.lines) >= count,
                timeout=timeout,
                what=f"{count} line(s) starting {start!r}",
            )
        except AssertionError as exc:
            raise AssertionError(f"{exc}; got {self.lines}, stderr {self.errors}") from None

    def stop(self, sig: signal.Signals = signal.SIGTERM, *, timeout: float = 15) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        code = self.process.wait(timeout)
        for reader in self._readers:
            reader.join(5)
        return code


@pytest.fixture
def followers():
    started: list[FollowerProcess] = []

    def start(url: str, *args: str, **env: str) -> FollowerProcess:
        follower = FollowerProcess(url, *args, **env)
        started.append(follower)
        return follower

    yield start
    for follower in started:
        if follower.process.poll() is None:
            follower.process.kill()
            follower.process.wait(10)


@pytest.mark.parametrize("calls_before_kill", [2, 20])
def test_a_standby_takes_over_within_seconds_when_the_active_follower_is_killed(
    followers, fake_target, seed, make_post, make_comment, calls_before_kill
):
    active = followers(fake_target.url, "--concurrency", "4", "--batch-size", "10")
    active.wait_for_line("Following changes")
    standby = followers(fake_target.url, "--concurrency", "4")
    standby.wait_for_line("Standby: another process holds the run lock")
    fake_target.latency = 0.05

    calls_needed = make_workload(seed, make_post, make_comment)
    wait_for(lambda: len(writes(fake_target)) >= calls_before_kill, what="the active one's calls")
    active.process.send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    assert active.stop(timeout=5) == -signal.SIGKILL
    sent_before_kill = len(writes(fake_target))
    assert sent_before_kill < calls_needed, "the run finished before the kill"

    standby.wait_for_line("Active: holding the run lock, taken over", timeout=10)
    took_over_in = time.monotonic() - killed_at
    wait_for(lambda: pending_count() == 0, timeout=30, what="the standby to deliver the rest")
    late = make_post(title="after the take-over")
    wait_for(lambda: late.pk in fake_target.posts, timeout=5, what="a change after the take-over")
    wait_for(lambda: pending_count() == 0, timeout=5, what="the late change recorded")

    assert took_over_in < 5
    assert target_state(fake_target) == expected_target()
    created = [(r.path, r.body["id"]) for r in fake_target.calls("POST") if r.status == 201]
    assert len(created) == len(set(created)), "an entity was created twice"
    assert not EntitySyncState.objects.filter(create_unconfirmed=True).exists()
    # Beyond the calls of the change after the take-over, at most what the killed run had sent
    # without recording it is sent again (idempotent PUTs and DELETEs, creates looked up first).
    assert len(writes(fake_target)) - 1 <= calls_needed + sent_before_kill
    assert standby.stop() == 0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_signal_finishes_and_records_the_calls_in_flight_then_exits_0(
    followers, fake_target, seed, sig
):
    posts, _ = seed(8)
    follower = followers(fake_target.url, "--concurrency", "2")
    follower.wait_for_line("Following changes")
    fake_target.latency = 1.0
    # One commit, so one run holds all eight: saved one by one, a first run could take the
    # first edit alone and deliver it before the stop (three calls, none of them wrong).
    with transaction.atomic():
        for post in posts:
            post.title = "edited"
            post.save()
    wait_for(lambda: fake_target.in_flight == 2, timeout=10, what="two calls in flight")

    stopped_at = time.monotonic()
    code = follower.stop(sig, timeout=15)
    took = time.monotonic() - stopped_at

    assert code == 0, follower.errors
    assert took < 5
    assert follower.lines[-1].startswith(f"Stopped ({sig.name} received) after ")
    assert follower.lines[-1].endswith("runs; the run lock is released")
    sent = [pk for pk, record in fake_target.posts.items() if record["title"] == "edited"]
    assert len(writes(fake_target)) == len(sent) == 2  # the two in flight, and no other
    pending = set(ModelEvent.objects.pending().values_list("entity_pk", flat=True))
    assert pending == {post.pk for post in posts} - set(sent)  # the two were recorded
    run = SyncRun.objects.order_by("-id").first()
    assert (run.status, run.calls_updated) == (SyncRun.Status.PARTIAL, 2)
    assert f"stopped: {sig.name} received" in run.error_summary
    lock = try_lock()
    assert lock is not None, "the run lock was not released"
    lock.release()


def test_sigterm_ends_a_follower_within_one_timeout_while_the_target_drips_its_answers(
    followers, fake_target, seed
):
    posts, _ = seed(6)
    follower = followers(fake_target.url, "--concurrency", "2", "--timeout", "2")
    follower.wait_for_line("Following changes")
    fake_target.drip(1, every=0.1, method="PUT")  # each answer takes about 20 s
    with transaction.atomic():
        for post in posts:
            post.title = "edited"
            post.save()
    wait_for(lambda: len(fake_target.calls("PUT")) == 2, timeout=10, what="two PUTs under way")

    stopped_at = time.monotonic()
    code = follower.stop(signal.SIGTERM, timeout=15)

    assert code == 0, follower.errors
    assert time.monotonic() - stopped_at < 2 + 1
    assert follower.lines[-1].startswith("Stopped (SIGTERM received) after ")
    assert len(fake_target.calls("PUT")) == 2  # not tried again
    assert pending_count() == 6


def test_a_standby_stopped_before_it_took_over_does_not_say_it_released_the_lock(
    followers, fake_target
):
    active = followers(fake_target.url)
    active.wait_for_line("Following changes")
    standby = followers(fake_target.url)
    standby.wait_for_line("Standby: another process holds the run lock")

    assert standby.stop(signal.SIGTERM) == 0
    assert standby.lines[-1] == (
        "Stopped (SIGTERM received) as a standby: it never held the run lock"
    )
    assert active.process.poll() is None  # the active one holds it still
    assert active.stop(signal.SIGTERM) == 0
    assert active.lines[-1].endswith("runs; the run lock is released")


def test_a_cron_run_beside_a_follower_exits_75(followers, fake_target, make_post):
    follower = followers(fake_target.url)
    follower.wait_for_line("Following changes")

    cron = run_manage("sync_changes", "--url", fake_target.url)
    post = make_post(title="sent by the follower")
    wait_for(lambda: post.pk in fake_target.posts, timeout=5)

    assert (cron.returncode, cron.stdout) == (75, "")
    assert cron.stderr == "CommandError: another sync_changes run holds the lock; try again later\n"
    assert follower.stop() == 0


def test_a_follower_rides_out_a_lost_database_and_catches_up_on_what_it_missed(
    followers, fake_target, make_post
):
    follower = followers(fake_target.url, SYNC_INTERVAL="60")
    follower.wait_for_line("Following changes")

    with connection.cursor() as cursor:  # every session of the follower ends, as in a restart
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    missed = make_post(title="logged while the follower had no connection")
    follower.wait_for_line("Active: holding the run lock", count=2, timeout=10)
    wait_for(lambda: missed.pk in fake_target.posts, timeout=10, what="the catch-up run")
    later = make_post(title="after the reconnect")
    wait_for(lambda: later.pk in fake_target.posts, timeout=5, what="a change heard again")

    assert [line for line in follower.lines if line.startswith("Active:")] == [
        "Active: holding the run lock",
        "Active: holding the run lock",
    ]
    # Whichever noticed first: the listening connection, or the run lock's session.
    noticed = follower.lines[2]
    assert noticed.startswith("Database unavailable (") or noticed == (
        "Lost the run lock; taking it again"
    ), follower.lines
    wait_for(lambda: pending_count() == 0, timeout=5, what="the events marked synced")
    assert follower.stop() == 0


def test_a_follower_given_another_target_says_so_in_one_line_and_leaves_the_lock(
    followers, fake_target, make_post
):
    make_post(title="delivered")
    assert run_manage("sync_changes", "--url", fake_target.url).returncode == 0
    make_post(title="pending")

    # No later run could send to it either: waiting would hold the lock for nothing.
    wrong = followers("http://127.0.0.1:9/", "--concurrency", "1")
    code = wrong.process.wait(30)
    for reader in wrong._readers:
        reader.join(5)

    assert code == 1
    assert len(wrong.errors) == 1, wrong.errors
    assert "describes the target" in wrong.errors[0] and fake_target.url in wrong.errors[0]
    lock = try_lock()
    assert lock is not None, "the follower kept the run lock"
    lock.release()
    assert pending_count() == 1
