"""Pacing calls to what the target allows: a rate and a number of calls in flight that follow its
answers, below ceilings the operator sets.

The rate follows CUBIC, as the AWS SDKs' adaptive retry mode does. A slowdown lowers it to a
share of the rate the run was sending at; from there it grows back fast to that rate, holds near
it, then probes beyond, slowly at first. It never runs more than twice ahead of what the run
actually sends, so an idle spell does not build up a burst.

What slows down: a 429 or a 503 that says when to come back (`Retry-After`), or 429s and 503s
for more than a fifth of the answers lately, lower the rate (a scattered refusal is no limit of
the pace); any of them, and answers much slower than the first ones (queueing), lower the calls
in flight by a share, and every quiet interval adds one back. A `Retry-After` pauses every call
of the run, not only the one that got it. Thread-safe: every worker thread of a run shares one
pacer.

Pure code: no Django, no HTTP. The clock can be given, for tests.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

# A slowdown lowers the rate to this share of what the run was sending, and the calls in flight to
# this share of theirs.
BETA = 0.7
CONCURRENCY_DECREASE = 0.7
# CUBIC's scale: how fast the rate grows back, in calls a second per second cubed.
SCALE = 0.4
# The rate sent is measured over intervals this long, each weighing this much against the past.
INTERVAL = 0.5
SMOOTH = 0.8
# What "lately" is, for the share of refusals; how much slower than the first answers is too slow.
WINDOW = 2.0
SLOW_LATENCY = 3.0
MIN_RATE = 0.5
# The pacing slows down at most once per this many seconds (one slowdown, many 429s in flight).
SETTLE = 1.0
CONGESTED = frozenset({429, 503})
# Refusals without a Retry-After lower the rate only above this share of the answers lately, of
# at least this many.
REFUSED = 0.2
MIN_SAMPLE = 20


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
        # CUBIC: the rate at the last slowdown, when it was, and how long the way back takes.
        self._last_max = 0.0
        self._slowed_at = 0.0
        self._way_back = 0.0
        # The rate the run sends, measured per INTERVAL and smoothed (0: not measured yet).
        self.sent_rate = 0.0
        self._interval_start: float | None = None
        self._interval_calls = 0
        self._idle_since: float | None = None  # no call held a place since then
        self._answered: deque[float] = deque()  # answers other than refusals, lately
        self._refused: deque[float] = deque()  # 429s and 503s, lately
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
                # As if the way back to it were over: hold near it, then probe beyond.
                self._slowed_at_rate(self.rate, self._clock())
                self._slowed_at -= self._way_back

    def acquire(self, stopping: Callable[[], bool] = lambda: False) -> bool:
        """Wait for a place among the calls in flight, for the next slot of the rate, and for
        the end of a pause the target asked for. False (and no place taken) once `stopping()`."""
        with self._lock:
            while self.concurrency and self.in_flight >= self.concurrency:
                if stopping():
                    return False
                self._lock.wait(0.05)
            if not self.in_flight and self._idle_since is not None:
                # Time with nothing to send is not sending slowly (a follower between changes);
                # a pause the pacer imposes is, for the calls that wait.
                if self._interval_start is not None:
                    self._interval_start += self._clock() - self._idle_since
                self._idle_since = None
            self.in_flight += 1
        if self.wait_turn(stopping):
            return True
        with self._lock:
            self.in_flight -= 1
            if not self.in_flight:
                self._idle_since = self._clock()
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
        much slower than the first ones; speeds up otherwise."""
        with self._lock:
            self.in_flight -= 1
            now = self._clock()
            self._lock.notify_all()
            self._measure(now)
            if not self.in_flight:
                self._idle_since = now
            if status in CONGESTED or retry_after:
                self.note_congestion(retry_after=retry_after, now=now)
                return
            self._answered.append(now)
            if status is not None and status < 500:
                self._note_latency(latency, now)
                self._increase(now)

    def note_congestion(
        self, *, retry_after: float | None = None, now: float | None = None
    ) -> None:
        """The target said it is overloaded: pause every call as long as it asked; fewer calls
        at once; and a lower rate when it said when to come back, or refuses many calls lately
        (a scattered refusal is no limit of the pace). Once per SETTLE seconds, however many
        calls in flight get the same answer."""
        with self._lock:
            now = self._clock() if now is None else now
            self.congestions += 1
            self._refused.append(now)
            if retry_after:
                self._paused_until = max(self._paused_until, now + retry_after)
            self._decrease(now, rate=bool(retry_after) or self.refused_share(now) > REFUSED)

    @property
    def paused_for(self) -> float:
        with self._lock:
            return max(0.0, self._paused_until - self._clock())

    # --- Adapting --------------------------------------------------------------------------------

    def refused_share(self, now: float) -> float:
        """Of the answers lately, the share that said the target is overloaded (0 while too
        few answers tell it)."""
        _trim(self._refused, now)
        _trim(self._answered, now)
        answers = len(self._refused) + len(self._answered)
        return len(self._refused) / answers if answers >= MIN_SAMPLE else 0.0

    def _measure(self, now: float) -> None:
        """Count an answered call towards the rate the run sends."""
        if self._interval_start is None:
            self._interval_start = now
        self._interval_calls += 1
        elapsed = now - self._interval_start
        if elapsed >= INTERVAL:
            current = self._interval_calls / elapsed
            past = self.sent_rate or current
            self.sent_rate = SMOOTH * current + (1 - SMOOTH) * past
            self._interval_start, self._interval_calls = now, 0

    def _sending(self, now: float) -> float:
        """The rate the run sends: measured, or while no interval has ended, the first calls'."""
        if self.sent_rate:
            return self.sent_rate
        elapsed = now - (self._interval_start if self._interval_start is not None else now)
        return self._interval_calls / elapsed if elapsed > 0 else 0.0

    def _slowed_at_rate(self, rate: float, now: float) -> None:
        self._last_max = rate
        self._slowed_at = now
        self._way_back = (rate * (1 - BETA) / SCALE) ** (1 / 3)

    def _decrease(self, now: float, *, rate: bool = True) -> None:
        if now - self._last_change < SETTLE:
            return
        sending = self._sending(now)
        if rate and (sending or self.rate):
            at = min(sending, self.rate) if sending and self.rate else (sending or self.rate)
            self._slowed_at_rate(at, now)
            self.rate = self._ceiled(at * BETA)
        if self.concurrency or self.in_flight:
            current_concurrency = self.concurrency or max(self.in_flight, 1)
            self.concurrency = max(1, int(current_concurrency * CONCURRENCY_DECREASE))
        self._last_change = self._last_increase = now

    def _increase(self, now: float) -> None:
        if self._last_max:
            # CUBIC: back to the last slowdown's rate after _way_back seconds, then beyond.
            cubic = SCALE * (now - self._slowed_at - self._way_back) ** 3 + self._last_max
            if self.sent_rate:
                cubic = min(cubic, 2 * self.sent_rate)
            self.rate = self._ceiled(cubic)
        # Quiet intervals add a call in flight, even between slowdowns: a target that refuses a
        # share of calls whatever the pace would otherwise ratchet them down to one.
        if now - self._last_increase < INTERVAL or now - self._last_change < INTERVAL:
            return
        self._last_increase = now
        if self.concurrency and (
            not self.max_concurrency or self.concurrency < self.max_concurrency
        ):
            self.concurrency += 1

    def _ceiled(self, rate: float) -> float:
        rate = max(MIN_RATE, rate)
        return min(rate, self.max_rps) if self.max_rps else rate

    def _note_latency(self, latency: float, now: float) -> None:
        """Answers that take SLOW_LATENCY times the first ones' time: the target is queueing."""
        if self._baseline is None:
            self._baseline = latency
        self._baseline = min(self._baseline, latency)
        self._latency = latency if self._latency is None else 0.8 * self._latency + 0.2 * latency
        if self._latency > SLOW_LATENCY * self._baseline + 0.05:
            # Queueing at the target: fewer calls at once (a slower rate would not shorten it).
            self._decrease(now, rate=False)
            self._latency = None


def _trim(moments: deque[float], now: float) -> None:
    """Forget what happened more than WINDOW seconds ago."""
    while moments and moments[0] < now - WINDOW:
        moments.popleft()
