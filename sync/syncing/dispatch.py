"""Sending one step to the target: HTTP only, no database. Runs in worker threads."""

from __future__ import annotations

import threading
import time

from sync.client import TargetApiClient
from sync.errors import TargetApiError
from sync.matching import unique_by_id
from sync.syncing.deliveries import Action, Delivery, Outcome, Result
from sync.target import content

# Consecutive calls that found the target unreachable before the run stops sending.
CIRCUIT_BREAKER_THRESHOLD = 10


class StopSignal:
    """Tells every thread of a run to start no new call, and why."""

    def __init__(self, *, deadline: float | None = None, budget: float = 0.0) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._requested = ""
        self.reason = ""
        self.deadline = deadline
        self.budget = budget

    def set(self, reason: str) -> None:
        with self._lock:
            if not self._event.is_set():
                self.reason = reason
                self._event.set()

    def request(self, reason: str) -> None:
        """Like set(), but safe in a signal handler: it takes no lock, the next check sees it."""
        self._requested = reason

    def is_set(self) -> bool:
        if self._requested and not self._event.is_set():
            self.set(self._requested)
        expired = self.deadline is not None and time.monotonic() >= self.deadline
        if expired and not self._event.is_set():
            self.set(f"stopped when its time budget of {self.budget:g} s was used up")
        return self._event.is_set()


class Dispatcher:
    """Turns a Delivery into an Outcome with the client; counts calls that find no target."""

    def __init__(
        self,
        client: TargetApiClient,
        stop: StopSignal,
    ) -> None:
        self.client = client
        self.stop = stop
        # Once the run stops, no call starts and none is tried again (nor waited for).
        client.stop_when = stop.is_set
        self._lock = threading.Lock()
        self._unreachable_in_a_row = 0

    def send(self, delivery: Delivery) -> Outcome:
        if self.stop.is_set():
            return Outcome(
                delivery, Result.FAILED, error=f"not sent: {self.stop.reason}", sent=False
            )
        sent_at = time.monotonic()
        try:
            outcome = self._send(delivery)
        except TargetApiError as exc:
            if not exc.sent:
                return Outcome(
                    delivery, Result.FAILED, error=f"not sent: {self.stop.reason}", sent=False
                )
            self._count(exc)
            return Outcome(
                delivery,
                Result.FAILED,
                error=str(exc),
                http_status=exc.status,
                permanent=not exc.transient,
                sent_at=sent_at,
                answered_at=time.monotonic(),
            )
        self._count(None)
        return outcome

    def probe(self) -> bool:
        """True when the target answers a cheap read (a filter that matches nothing)."""
        try:
            self.client.find("posts", {"id": 0, "userId": -1})
        except TargetApiError:
            return False
        return True

    def _send(self, delivery: Delivery) -> Outcome:
        client, resource = self.client, delivery.resource
        if delivery.action is Action.DELETE:
            assert delivery.remote_id is not None
            sent_at = time.monotonic()
            client.delete(resource, delivery.remote_id)
            return Outcome(
                delivery,
                Result.DONE,
                http_status=200,
                sent_at=sent_at,
                answered_at=time.monotonic(),
            )
        if delivery.action is Action.FIND:
            return self._find(delivery, delivery.lookups)
        assert delivery.record is not None
        if delivery.action is Action.PUT:
            assert delivery.remote_id is not None
            if client.update(resource, delivery.remote_id, delivery.record) is None:
                return Outcome(delivery, Result.GONE, http_status=404)
            return Outcome(delivery, Result.DONE, record=delivery.record, http_status=200)
        try:
            answer = client.create(resource, delivery.record)
        except TargetApiError as exc:
            if not exc.outcome_unknown:
                raise
            self._count(exc)
            if exc.timed_out:
                # The target may still be working on it: a lookup now could miss it, and a
                # second POST would then duplicate it. The flag stays; the next run looks.
                return Outcome(delivery, Result.FAILED, error=f"{exc}; looked for on the next run")
            # The POST may have landed: look for it now; the run decides whose it is.
            try:
                return self._find(delivery, (delivery.record,), error=str(exc))
            except TargetApiError as lookup:
                # No answer of the POST's own: nothing here counts towards parking.
                return Outcome(delivery, Result.FAILED, error=f"{exc}; the lookup failed: {lookup}")
        remote_id = answer.get("id")
        if not isinstance(remote_id, int) or isinstance(remote_id, bool):
            remote_id = delivery.record["id"]
        return Outcome(delivery, Result.DONE, record={**delivery.record, "id": remote_id})

    def _find(self, delivery: Delivery, lookups, *, error: str = "") -> Outcome:
        sent_at = time.monotonic()
        found = []
        for wanted in unique_contents(lookups):
            found += self.client.find(delivery.resource, wanted)
        return Outcome(
            delivery,
            Result.FOUND,
            candidates=unique_by_id(found),
            error=error,
            http_status=200,
            sent_at=sent_at,
            answered_at=time.monotonic(),
        )

    def _count(self, exc: TargetApiError | None) -> None:
        with self._lock:
            if exc is None or exc.status is not None:
                self._unreachable_in_a_row = 0
                return
            self._unreachable_in_a_row += 1
            if self._unreachable_in_a_row >= CIRCUIT_BREAKER_THRESHOLD:
                self.stop.set(
                    f"stopped after {self._unreachable_in_a_row} calls in a row found the "
                    "target unreachable"
                )


def unique_contents(records) -> list[dict]:
    """Each distinct content once (records without their ids)."""
    seen: list[dict] = []
    for record in records:
        if record is not None and content(record) not in seen:
            seen.append(content(record))
    return seen
