"""When a run stops sending: asked to (a signal, its time budget, an unreachable target), or
because it lost its run lock, after which it records nothing more."""

from __future__ import annotations

from sync.locking import RunLock
from sync.syncing.dispatch import StopSignal

LOCK_LOST = "stopped: it lost its run lock (the database session that held it ended)"


class RunGuard:
    """The run's stop signal and run lock, and what stopping left behind."""

    def __init__(self, lock: RunLock, stop: StopSignal) -> None:
        self.lock = lock
        self.stop = stop
        self.lock_lost = False
        # Some call was left unsent because the run was stopping.
        self.left_unsent = False

    def stopping(self, *, quick: bool = False) -> bool:
        """True once the run must start no new call. `quick`: look for a sign that the lock
        was lost without a query; a sign is confirmed with a real check before giving up."""
        if not self.lock_lost and (not quick or self.lock.lost(quick=True)) and self.lock.lost():
            self.lose_lock()
        return self.stop.is_set()

    def may_record(self) -> bool:
        """True while the run holds its lock: nothing is recorded without it."""
        if not self.lock_lost and self.lock.lost():
            self.lose_lock()
        return not self.lock_lost

    def lose_lock(self) -> None:
        self.lock_lost = True
        self.stop.set(LOCK_LOST)

    @property
    def stopped_early(self) -> str:
        """Why the run stopped before it was done, or "" when it stopped with nothing left."""
        if self.stop.is_set() and (self.left_unsent or self.lock_lost):
            return self.stop.reason
        return ""
