"""The follower: `sync_changes` run again and again as changes commit, for as long as it lives.

It holds the run lock for its whole life, so a cron run beside it exits 75 and a second
follower waits as a standby, taking the lock over when the first one dies (PostgreSQL frees a
dead session's advisory lock; the kernel frees a dead process's file lock). Every run is
`sync.syncing.sync_changes` under that lock: the same planner, delivery, history and
guarantees as a cron run.

It rides out failures: a lost database connection (it reconnects with capped backoff, takes
the lock again or becomes the standby, then runs at once to catch up), and a target that is
down (its runs stop early; it backs off, capped, without spinning). Asked to stop, it starts no
new call, lets the calls in flight finish and be recorded, releases the lock and returns.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass

from django.db import DatabaseError, connections

from sync.client import TargetApiClient
from sync.errors import SyncError, TargetChanged, tables_missing
from sync.following.signals import stop_on_signals
from sync.following.wakeups import (
    SLICE,
    Schedule,
    describe_wakeups,
    open_wakeups,
    wait_for_run,
)
from sync.locking import RunLock, try_lock
from sync.syncing import FailedEntity, StopSignal, SyncOptions, SyncReport, sync_changes


@dataclass(frozen=True)
class FollowOptions:
    interval: float = 60.0  # a run at least this often, changes heard or not
    debounce: float = 0.2  # quiet seconds after a change before a run starts...
    max_wait: float = 0.2  # ...but at most this long after the first change heard
    backoff_max: float = 30.0  # longest pause after a failed run or a lost database
    standby_poll: float = 1.0  # how often a standby tries the lock
    poll_every: float = 0.5  # how often new events are looked for without LISTEN (SQLite)


class LockLost(Exception):
    """The run lock is gone: the database session that held it ended, or its file was removed."""


class Backoff:
    """Pauses of 1, 2, 4 ... seconds, capped; reset after a success."""

    def __init__(self, cap: float) -> None:
        self.cap = cap
        self.failures = 0

    def next(self) -> float:
        self.failures += 1
        return min(self.cap, 2.0 ** (self.failures - 1))

    def reset(self) -> None:
        self.failures = 0


class Follower:
    def __init__(
        self,
        *,
        client: TargetApiClient,
        options: SyncOptions,
        follow: FollowOptions,
        say: Callable[[str], None] = lambda line: None,
        on_report: Callable[[SyncReport], None] = lambda report: None,
        on_failure: Callable[[FailedEntity], None] = lambda failed: None,
    ) -> None:
        self.client = client
        self.options = options
        self.follow = follow
        self.say = say
        self.on_report = on_report
        self.on_failure = on_failure
        self.stop_reason = ""
        self.runs = 0
        self.held_lock = False  # at some time: a standby stopped before it took over never did
        self._run_stop: StopSignal | None = None
        self._target_backoff = Backoff(follow.backoff_max)
        self._database_backoff = Backoff(follow.backoff_max)

    # --- Stopping ---------------------------------------------------------------------------------

    def request_stop(self, reason: str) -> None:
        """Start no new work, and make a run under way start no new call.

        Safe in a signal handler or another thread: it takes no lock.
        """
        if not self.stop_reason:
            self.stop_reason = reason
        run_stop = self._run_stop
        if run_stop is not None:
            run_stop.request(f"stopped: {reason}")

    def stopping(self) -> bool:
        return bool(self.stop_reason)

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.stopping() and (left := deadline - time.monotonic()) > 0:
            time.sleep(min(left, SLICE))

    # --- The life of a follower -------------------------------------------------------------------

    def run_until_signalled(self) -> None:
        """run(), SIGTERM and SIGINT asking it to stop."""
        with stop_on_signals(self.request_stop):
            self.run()

    def run(self) -> None:
        """Follow until asked to stop: standby while another process holds the lock. Raises
        TargetChanged, with the lock released, when the sync state describes another target."""
        while not self.stopping():
            try:
                lock = self._take_lock()
                if lock is None:
                    break
                try:
                    self._lead(lock)
                finally:
                    lock.release()
            except LockLost:
                _close_connections()
                self.say("Lost the run lock; taking it again")
            except DatabaseError as exc:
                _close_connections()
                if self.stopping():
                    break
                pause = self._database_backoff.next()
                if tables_missing(reason := _first_line(exc)):
                    # Under compose the follower may start before the web service migrated.
                    self.say(
                        f"Database not migrated ({reason}): run manage.py migrate; "
                        f"retrying in {pause:g} s"
                    )
                else:
                    self.say(f"Database unavailable ({reason}); retrying in {pause:g} s")
                self._sleep(pause)
        _close_connections()

    def _take_lock(self) -> RunLock | None:
        waiting = False
        while not self.stopping():
            lock = try_lock()
            self._database_backoff.reset()
            if lock is not None:
                self.held_lock = True
                self.say("Active: holding the run lock" + (", taken over" if waiting else ""))
                return lock
            if not waiting:
                self.say("Standby: another process holds the run lock; taking over when it ends")
                waiting = True
            self._sleep(self.follow.standby_poll)
        return None

    def _lead(self, lock: RunLock) -> None:
        wakeups = open_wakeups(poll_every=self.follow.poll_every)
        try:
            self.say(
                f"Following changes: {describe_wakeups(wakeups)}; a run at least every "
                f"{self.follow.interval:g} s"
            )
            schedule = Schedule(
                debounce=self.follow.debounce,
                max_wait=self.follow.max_wait,
                interval=self.follow.interval,
            )
            schedule.retry_at = time.monotonic()  # catch up at once
            while wait_for_run(wakeups, schedule, stopping=self.stopping):
                if lock.lost():
                    raise LockLost
                wakeups.before_run()
                schedule.started_run(time.monotonic())
                report = self._run_once(lock)
                if report is not None and lock.lost(quick=report.ok):
                    raise LockLost
                self._plan_next(report, schedule)
        finally:
            wakeups.close()

    def _run_once(self, lock: RunLock) -> SyncReport | None:
        stop = StopSignal()
        self._run_stop = stop
        if self.stop_reason:
            stop.request(f"stopped: {self.stop_reason}")
        try:
            report = sync_changes(
                client=self.client,
                options=self.options,
                lock=lock,
                stop=stop,
                on_failure=self.on_failure,
            )
        except TargetChanged:
            raise  # no later run could send either: the follower ends, and leaves the lock
        except SyncError as exc:
            self.say(f"Run failed: {exc}")
            return None
        finally:
            self._run_stop = None
        self.runs += 1
        self.on_report(report)
        return report

    def _plan_next(self, report: SyncReport | None, schedule: Schedule) -> None:
        """After a run: wait for changes, or retry soon, or back off while the target is down."""
        if self.stopping():
            return
        if report is not None and (report.ok or all(f.permanent for f in report.failed)):
            # Delivered, or only failures that wait for a new change (they count to parking).
            self._target_backoff.reset()
            return
        if report is not None and report.entities_synced:
            self._target_backoff.reset()  # the target works: some entities failed, try again
        pause = self._target_backoff.next()
        now = time.monotonic()
        schedule.retry_at = schedule.not_before = now + pause
        if pause > 1:
            self.say(f"The target is failing; next run in {pause:g} s")


def _close_connections() -> None:
    """Drop Django's connections: after an error, the next query opens a fresh one."""
    for connection in connections.all(initialized_only=True):
        with suppress(Exception):
            connection.close()


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
