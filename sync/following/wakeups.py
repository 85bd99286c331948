"""When a follower runs: woken by committed changes, batched by a debounce, and at least every
SYNC_INTERVAL seconds.

On PostgreSQL the change log notifies a channel when events commit (`sync.notifications`), heard
by a thread of its own so that the time of each notification is known even while a run is under
way; on other databases a poller watches the newest event id (a primary key lookup).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol

from django.db import DatabaseError, connection
from django.db.models import Max

from sync.models import ModelEvent
from sync.notifications import Listener

# The longest a follower blocks without looking at its stop flag, in seconds.
SLICE = 0.25


class Wakeups(Protocol):
    def wait(self, timeout: float) -> float | None:
        """As soon as a change is heard of, the monotonic time it was heard; None after
        `timeout` seconds without one."""

    def before_run(self) -> None:
        """A run starts now: what was logged so far is its to deliver."""

    def close(self) -> None: ...


class NewEventPoller:
    """Hears of changes by polling the newest event id every `every` seconds (SQLite).

    Ids are taken in commit order there (one writer at a time), and never reused.
    """

    def __init__(self, *, every: float = 0.5) -> None:
        self.every = every
        self.seen = newest_event_id()
        self.next_look = time.monotonic() + every

    def wait(self, timeout: float) -> float | None:
        now = time.monotonic()
        if now < self.next_look:
            time.sleep(max(0.0, min(timeout, self.next_look - now)))
            if time.monotonic() < self.next_look:
                return None
        looked = time.monotonic()
        self.next_look = looked + self.every
        newest = newest_event_id()
        heard, self.seen = newest > self.seen, max(newest, self.seen)
        return looked if heard else None

    def before_run(self) -> None:
        self.seen = max(self.seen, newest_event_id())

    def close(self) -> None:
        pass


class ListeningThread:
    """Hears the change log's notifications in a thread, and when each came (PostgreSQL).

    A lost connection is raised, as DatabaseError, by the next wait().
    """

    def __init__(self) -> None:
        self._listener = Listener()
        self._heard: list[float] = []
        self._error: DatabaseError | None = None
        self._closing = False
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._listen, name="sync-listener", daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        while not self._closing:
            try:
                heard = self._listener.wait(SLICE)
            except DatabaseError as exc:
                with self._changed:
                    self._error = exc
                    self._changed.notify_all()
                return
            if heard:
                with self._changed:
                    self._heard.append(time.monotonic())
                    self._changed.notify_all()

    def wait(self, timeout: float) -> float | None:
        with self._changed:
            if not self._heard and self._error is None:
                self._changed.wait(timeout)
            if self._heard:
                return self._heard.pop(0)
            if self._error is not None:
                raise self._error
        return None

    def before_run(self) -> None:
        """Forget what was heard so far: the run about to start reads every change committed
        before it (a notification comes after the commit, and the run takes every pending
        event up to the newest one it finds)."""
        with self._changed:
            self._heard.clear()

    def close(self) -> None:
        self._closing = True
        self._thread.join(SLICE * 4)
        self._listener.close()


def newest_event_id() -> int:
    return ModelEvent.objects.aggregate(newest=Max("id"))["newest"] or 0


def open_wakeups(*, poll_every: float = 0.5) -> Wakeups:
    """A LISTEN on PostgreSQL, a poller elsewhere; raises DatabaseError when the database is
    not there."""
    if connection.vendor == "postgresql":
        return ListeningThread()
    return NewEventPoller(every=poll_every)


def describe_wakeups(wakeups: Wakeups) -> str:
    if isinstance(wakeups, NewEventPoller):
        return f"polling for new events every {wakeups.every:g} s"
    return "listening for committed changes (LISTEN sync_events)"


class Schedule:
    """Decides when the next run starts.

    After the first change heard, the run waits until no change has come for `debounce`
    seconds, but never longer than `max_wait` after that first one, so a burst becomes one run
    and steady traffic a run every `max_wait` seconds (or back to back, when runs take longer).
    A change heard while a run is under way counts from when it was heard. Without any change,
    a run starts
    `interval` seconds after the last one began (a notification can be lost while the
    listener reconnects). `retry_at` brings a run forward (retrying after a failed run) and
    `not_before` holds every run back (backing off).
    """

    def __init__(self, *, debounce: float, max_wait: float, interval: float) -> None:
        self.debounce = debounce
        self.max_wait = max_wait
        self.interval = interval
        self.first_heard: float | None = None
        self.last_heard: float | None = None
        self.last_run = time.monotonic()
        self.not_before = 0.0
        self.retry_at: float | None = None

    def heard(self, now: float) -> None:
        if self.first_heard is None:
            self.first_heard = now
        self.last_heard = now

    def started_run(self, now: float) -> None:
        self.last_run = now
        self.first_heard = self.last_heard = self.retry_at = None
        self.not_before = 0.0

    def due(self) -> float:
        """The monotonic time of the next run."""
        due = self.last_run + self.interval
        if self.first_heard is not None:
            quiet = self.last_heard + self.debounce
            due = min(due, quiet, self.first_heard + self.max_wait)
        if self.retry_at is not None:
            due = min(due, self.retry_at)
        return max(due, self.not_before)


def wait_for_run(wakeups: Wakeups, schedule: Schedule, *, stopping: Callable[[], bool]) -> bool:
    """Block until the next run is due; False when the follower was asked to stop first."""
    while not stopping():
        now = time.monotonic()
        due = schedule.due()
        if now >= due:
            return True
        heard_at = wakeups.wait(min(due - now, SLICE))
        if heard_at is not None:
            schedule.heard(heard_at)
    return False
