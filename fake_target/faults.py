"""Misbehaviour on request: answer with a status, drop the connection, stall, or drip.

A fault applies to matching requests (method, path prefix, writes only), a number of times or a
share of them (seeded, so runs repeat), before the request is served or after it (a write that
is applied and then answered badly).
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from fake_target.wire import JSON_TYPE, WRITE_METHODS, dump


@dataclass
class Fault:
    """A misbehaviour for matching requests; the first matching fault that fires wins.

    `kind` is "answer" (send `status` and `body` instead of serving), "drop" (close the
    connection without answering), "stall" (wait `seconds`, then serve normally) or "drip"
    (serve, then send the whole answer, status line and headers included, `chunk` bytes every
    `seconds`).
    `times` counts the requests it still applies to (None: no limit); `share` is the probability
    that it applies to a matching request (seeded, so runs repeat). With `after_processing` the
    request is served first (a write is applied) and then answered or dropped as told; a stall
    then waits between serving and answering (an answer that travels back slowly). An answer or
    a drop waits `seconds` before anything else. With `applied_after`, the request is answered
    or dropped at once and served that many seconds later, in the background: a proxy that gave
    up (502, 504) while the server behind it went on.
    """

    kind: str
    status: int = 500
    body: bytes = b""
    content_type: str = JSON_TYPE
    retry_after: str | None = None
    seconds: float = 0.0
    chunk: int = 1
    times: int | None = None
    share: float | None = None
    writes_only: bool = False
    method: str | None = None
    path: str | None = None
    after_processing: bool = False
    applied_after: float | None = None

    def matches(self, method: str, path: str) -> bool:
        if self.writes_only and method not in WRITE_METHODS:
            return False
        if self.method is not None and method != self.method.upper():
            return False
        return (
            self.path is None or path == self.path or path.startswith(self.path.rstrip("/") + "/")
        )


@dataclass
class Answer:
    status: int | None
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    # Sent `drip[0]` bytes every `drip[1]` seconds instead of at once.
    drip: tuple[int, float] | None = None


def fault_answer(fault: Fault) -> Answer:
    if fault.kind == "drop":
        return Answer(None)
    headers = {"Content-Type": fault.content_type}
    if fault.retry_after is not None:
        headers["Retry-After"] = fault.retry_after
    return Answer(fault.status, fault.body, headers)


class TokenBucket:
    """At most `rate` requests a second, in bursts of at most `burst`: what an API's rate limit
    lets through. Thread-safe."""

    def __init__(self, rate: float, *, burst: float | None = None) -> None:
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate / 5)
        self._tokens = self.burst
        self._at = time.monotonic()
        self._lock = threading.Lock()

    def take(self) -> float:
        """0 when a request may pass (its token taken), else the seconds until one may."""
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
            self._at = now
            if self._tokens >= 1:
                self._tokens -= 1
                return 0.0
            return (1 - self._tokens) / self.rate


class Faults:
    """The misbehaviour half of FakeTarget: faults are added, then taken by matching requests."""

    faults: list[Fault]
    _lock: threading.RLock
    _random: random.Random

    def answer(
        self,
        status: int,
        *,
        body: bytes | str | Any = None,
        content_type: str = JSON_TYPE,
        retry_after: str | float | None = None,
        times: int | None = None,
        share: float | None = None,
        writes_only: bool = False,
        method: str | None = None,
        path: str | None = None,
        after_processing: bool = False,
        delay: float = 0.0,
        applied_after: float | None = None,
    ) -> Fault:
        """Answer matching requests with `status` and `body` (bytes, text or JSON) instead,
        `delay` seconds after they arrive; with `applied_after`, serve them that much later."""
        if isinstance(body, str):
            raw = body.encode()
        elif isinstance(body, bytes):
            raw = body
        else:
            raw = dump({"error": HTTPStatus(status).phrase} if body is None else body)
        return self._add(
            Fault(
                kind="answer",
                status=status,
                body=raw,
                content_type=content_type,
                retry_after=None if retry_after is None else str(retry_after),
                seconds=delay,
                times=times,
                share=share,
                writes_only=writes_only,
                method=method,
                path=path,
                after_processing=after_processing,
                applied_after=applied_after,
            )
        )

    def fail(self, status: int = 500, **options) -> Fault:
        """Answer matching requests with an error status (a 429 gets `Retry-After: 1`).

        Options are those of `answer`: times, share, writes_only, method, path, retry_after,
        body, after_processing, delay, applied_after.
        """
        if status == 429:
            options.setdefault("retry_after", 1)
        return self.answer(status, **options)

    def drop(
        self,
        *,
        times: int | None = None,
        share: float | None = None,
        writes_only: bool = False,
        method: str | None = None,
        path: str | None = None,
        after_processing: bool = False,
        delay: float = 0.0,
        applied_after: float | None = None,
    ) -> Fault:
        """Close the connection without answering, `delay` seconds after the request arrived;
        with `after_processing` apply the write first, with `applied_after` that much later."""
        return self._add(
            Fault(
                kind="drop",
                seconds=delay,
                times=times,
                share=share,
                writes_only=writes_only,
                method=method,
                path=path,
                after_processing=after_processing,
                applied_after=applied_after,
            )
        )

    def stall(
        self,
        seconds: float,
        *,
        times: int | None = None,
        share: float | None = None,
        writes_only: bool = False,
        method: str | None = None,
        path: str | None = None,
        after_processing: bool = False,
    ) -> Fault:
        """Wait `seconds` (on top of `latency`) before serving matching requests; with
        `after_processing`, serve them first (a write is applied) and wait before answering."""
        return self._add(
            Fault(
                kind="stall",
                seconds=seconds,
                times=times,
                share=share,
                writes_only=writes_only,
                method=method,
                path=path,
                after_processing=after_processing,
            )
        )

    def drip(
        self,
        chunk: int = 1,
        every: float = 1.0,
        *,
        times: int | None = None,
        share: float | None = None,
        writes_only: bool = False,
        method: str | None = None,
        path: str | None = None,
    ) -> Fault:
        """Serve matching requests (a write is applied), then send each answer slowly: `chunk`
        bytes every `every` seconds, from the status line to the last byte of the body, so a
        client that only bounds each read never times out."""
        if chunk < 1 or every <= 0:
            raise ValueError("a drip sends at least 1 byte at a time, more than 0 s apart")
        return self._add(
            Fault(
                kind="drip",
                seconds=every,
                chunk=chunk,
                times=times,
                share=share,
                writes_only=writes_only,
                method=method,
                path=path,
            )
        )

    def clear_faults(self) -> None:
        with self._lock:
            self.faults.clear()

    def _add(self, fault: Fault) -> Fault:
        with self._lock:
            self.faults.append(fault)
        return fault

    def _take_fault(self, method: str, path: str) -> Fault | None:
        for fault in self.faults:
            if not fault.matches(method, path):
                continue
            if fault.share is not None and self._random.random() >= fault.share:
                continue
            if fault.times is not None:
                fault.times -= 1
                if fault.times <= 0:
                    self.faults.remove(fault)
            return fault
        return None
