"""Pacing calls to what the target allows: a rate and a number of calls in flight that follow its
answers, below ceilings the operator sets.

Additive increase, multiplicative decrease, as TCP does. A 429 or a 503, or answers that grow much
slower than the first ones, lower the rate to a share of what the target accepted over the last
seconds, and the calls in flight by a share; every quiet interval raises them again, fast far below
the rate of the last slowdown and slowly near it. A `Retry-After` pauses every call of the run,
not only the one that got it. Thread-safe: every worker thread of a run shares one pacer.

Pure code: no Django, no HTTP. The clock can be given, for tests.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

# A slowdown lowers the rate to this share of what the target accepted lately, and the calls in
# flight to this share of theirs.
DECREASE = 0.9
CONCURRENCY_DECREASE = 0.7
# Quiet intervals raise the rate: by this share of it while far below the last slowdown's rate
# (or with none seen), by the smaller one near it.
INTERVAL = 0.5
FAST_STEP = 0.1
SLOW_STEP = 0.01
NEAR = 0.9
# What "lately" is, for the accepted rate; how much slower than the first answers is too slow.
WINDOW = 2.0
SLOW_LATENCY = 3.0
MIN_RATE = 0.5
# Answers needed within WINDOW before what the target accepted is taken as its rate.
MIN_SAMPLE = 5
# The pacing slows down at most once per this many seconds (one slowdown, many 429s in flight).
SETTLE = 1.0
CONGESTED = frozenset({429, 503})


class Pacer:
    """How fast and how many at once; `acquire` before a call, `release` with its answer."""

    def __init__(
        self,
        *,
        max_rps: float = 0.0,
        max_concurrency: int = 0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.max_rps = max_rps  # 0: no ceiling
        self.max_concurrency = max_concurrency  # 0: no ceiling
        self._clock, self._sleep = clock, sleep
        self._lock = threading.Condition()
        self.rate = max_rps  # 0: unlimited until the target says otherwise
        self.concurrency = max_concurrency
        self.in_flight = 0
        self.congestions = 0
        self._next_slot = 0.0
        self._paused_until = 0.0
        self._last_change = -SETTLE
        self._last_increase = 0.0
        self._slowdown_rate = 0.0
        self._accepted: deque[float] = deque()
        self._baseline: float | None = None
        self._latency: float | None = None

    # --- The caller's side -----------------------------------------------------------------------

    def resume(self, rate: float, *, max_concurrency: int | None = None) -> None:
        """Start from the rate a run before this one settled on (below the ceiling), with at
        most `max_concurrency` calls in flight (the run's --concurrency)."""
        with self._lock:
            if max_concurrency is not None:
                self.max_concurrency = self.concurrency = max_concurrency
            if rate > 0:
                self.rate = min(rate, self.max_rps) if self.max_rps else rate
                self._slowdown_rate = self.rate

    def acquire(self, stopping: Callable[[], bool] = lambda: False) -> bool:
        """Wait for a place among the calls in flight, for the next slot of the rate, and for
        the end of a pause the target asked for. False (and no place taken) once `stopping()`."""
        with self._lock:
            while self.concurrency and self.in_flight >= self.concurrency:
                if stopping():
                    return False
                self._lock.wait(0.05)
            self.in_flight += 1
        if self.wait_turn(stopping):
            return True
        with self._lock:
            self.in_flight -= 1
            self._lock.notify_all()
        return False

    def wait_turn(self, stopping: Callable[[], bool] = lambda: False) -> bool:
        """Wait for the next slot of the rate and the end of any pause (a call already holding
        its place, about to be tried again). False once `stopping()`."""
        while True:
            with self._lock:
                now = self._clock()
                slot = max(now, self._next_slot, self._paused_until)
                if slot <= now:
                    if self.rate:
                        self._next_slot = now + 1.0 / self.rate
                    return not stopping()
            if stopping():
                return False
            self._sleep(min(slot - now, 0.05))

    def release(
        self, status: int | None, *, latency: float, retry_after: float | None = None
    ) -> None:
        """The answer of a call (None: no answer). Slows down on a 429 or 503 or on answers
        much slower than the first ones; speeds up after quiet intervals."""
        with self._lock:
            self.in_flight -= 1
            now = self._clock()
            self._lock.notify_all()
            if status in CONGESTED or retry_after:
                self.note_congestion(retry_after=retry_after, now=now)
                return
            if status is not None and status < 500:
                self._accepted.append(now)
                self._note_latency(latency, now)
            self._maybe_increase(now)

    def note_congestion(
        self, *, retry_after: float | None = None, now: float | None = None
    ) -> None:
        """The target said it is overloaded: pause every call as long as it asked, and slow
        down (once per SETTLE seconds, however many calls in flight get the same answer)."""
        with self._lock:
            now = self._clock() if now is None else now
            self.congestions += 1
            if retry_after:
                self._paused_until = max(self._paused_until, now + retry_after)
            self._decrease(now)

    @property
    def paused_for(self) -> float:
        with self._lock:
            return max(0.0, self._paused_until - self._clock())

    # --- Adapting --------------------------------------------------------------------------------

    def accepted_rate(self, now: float) -> float:
        while self._accepted and self._accepted[0] < now - WINDOW:
            self._accepted.popleft()
        return len(self._accepted) / WINDOW

    def _decrease(self, now: float) -> None:
        if now - self._last_change < SETTLE:
            return
        accepted = self.accepted_rate(now)
        if len(self._accepted) >= MIN_SAMPLE:
            # What the target took lately is what it allows: a share of it.
            current = self.rate or accepted
            self.rate = max(MIN_RATE, min(current, DECREASE * accepted))
        elif self.rate:
            self.rate = max(MIN_RATE, self.rate / 2)
        # (Too few answers yet to tell a rate: the pause it asked for and fewer calls at once.)
        if self.rate:
            self._slowdown_rate = self.rate / DECREASE
        if self.concurrency or self.in_flight:
            current_concurrency = self.concurrency or max(self.in_flight, 1)
            self.concurrency = max(1, int(current_concurrency * CONCURRENCY_DECREASE))
        self._last_change = self._last_increase = now

    def _maybe_increase(self, now: float) -> None:
        if now - self._last_increase < INTERVAL or now - self._last_change < SETTLE:
            return
        self._last_increase = now
        if self.rate:
            near = self._slowdown_rate and self.rate >= NEAR * self._slowdown_rate
            self.rate *= 1 + (SLOW_STEP if near else FAST_STEP)
            if self.max_rps:
                self.rate = min(self.rate, self.max_rps)
            elif not self._slowdown_rate:
                self.rate = 0.0  # never slowed: no reason to hold it
        if self.concurrency and (
            not self.max_concurrency or self.concurrency < self.max_concurrency
        ):
            self.concurrency += 1

    def _note_latency(self, latency: float, now: float) -> None:
        """Answers that take SLOW_LATENCY times the first ones' time: the target is queueing."""
        if self._baseline is None:
            self._baseline = latency
        self._baseline = min(self._baseline, latency)
        self._latency = latency if self._latency is None else 0.8 * self._latency + 0.2 * latency
        if self._latency > SLOW_LATENCY * self._baseline + 0.05:
            self._decrease(now)
            self._latency = None
