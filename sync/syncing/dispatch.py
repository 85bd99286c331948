"""Sending one step to the target: HTTP only, no database. Runs in worker threads."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import replace

from sync.client import TargetApiClient
from sync.errors import TargetApiError
from sync.ids import unique_by_id
from sync.planner import Kind
from sync.syncing.deliveries import Action, Delivery, Outcome, Record, Result, TargetTraits
from sync.target import (
    MATCHES_NOTHING,
    acknowledged,
    content,
    holds,
    our_fields,
    readable_id,
    remote_key,
    rewritten_fields,
)

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

    def wait(self, seconds: float) -> None:
        """Sleep up to `seconds`, waking early once the run is stopped."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0 and not self.is_set():
            self._event.wait(min(left, 0.1))

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
        traits: TargetTraits | None = None,
    ) -> None:
        self.client = client
        self.stop = stop
        self.traits = traits or TargetTraits()
        # Once the run stops, no call starts and none is tried again (nor waited for).
        client.stop_when = stop.is_set
        self._lock = threading.Lock()
        self._unreachable_in_a_row = 0
        self._refused_in_a_row = 0

    def send(self, delivery: Delivery) -> Outcome:
        wait = delivery.not_before - time.monotonic()
        if wait > 0:
            self.stop.wait(wait)
        if self.stop.is_set():
            # A lookup for a create that may have landed is what did not go, not the create.
            what = "not looked for" if delivery.action is Action.FIND else "not sent"
            return Outcome(
                delivery,
                Result.FAILED,
                error=f"{what}: {self.stop.reason}",
                sent=False,
                stopped=True,
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
                # A failed lookup says nothing of the entity's own writes, nor do credentials
                # refused: never counted.
                permanent=not (exc.transient or exc.credentials_refused)
                and delivery.action is not Action.FIND,
                sent_at=sent_at,
                answered_at=time.monotonic(),
            )
        self._count(None)
        return outcome

    def probe(self) -> bool:
        """True when the target answers a cheap read (a filter that matches nothing)."""
        try:
            self.client.find(Kind.POST.resource, MATCHES_NOTHING)
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
            return self._find(delivery, delivery.sought)
        assert delivery.record is not None
        if delivery.action is Action.PUT:
            assert delivery.remote_id is not None
            answer = client.update(resource, delivery.remote_id, delivery.record)
            if answer is None:
                return Outcome(delivery, Result.GONE, http_status=404)
            return self._done(delivery, delivery.record, answer, http_status=200)
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
            # The POST may have landed: look for it now; the run decides whose it is. A first
            # POST answered "duplicate id" met a record that was there before it: not ours.
            refused = "duplicate" in exc.body.lower()  # json-server stored nothing
            taken = delivery.first_post and refused
            looked_for = delivery
            if not refused:
                # A proxy's 502 or 504, a connection cut after sending: the target may still be
                # applying it. Finding nothing proves nothing until one timeout has passed; only
                # then may it be sent again (decisions._after_lookup waits for that).
                settles = max(delivery.may_land_until, time.monotonic() + self.client.timeout)
                looked_for = replace(delivery, may_land_until=settles)
            try:
                return self._find(
                    looked_for,
                    (delivery.record,),
                    error=str(exc),
                    write_status=exc.status,
                    own_id_taken=taken,
                )
            except TargetApiError as lookup:
                # No answer of the POST's own: nothing here counts towards parking.
                return Outcome(delivery, Result.FAILED, error=f"{exc}; the lookup failed: {lookup}")
        remote_id = readable_id(answer.get("id"))
        if remote_id is None:
            # Created, but under an id we cannot read: never taken as ours by id. Which record
            # it is, is found by its content, as after a lost answer; it is not sent again.
            error = (
                f"POST /{resource} was answered without a usable id "
                f"({_shown(answer.get('id'))}): looked for by its content"
            )
            landed = replace(delivery, landed=True)
            # What it says it stored still tells how it stores it.
            kind = delivery.entity.kind
            stored = acknowledged(kind, delivery.record, answer)
            self.traits.learn_rewrites(kind, rewritten_fields(kind, delivery.record, stored))
            try:
                return self._find(landed, (delivery.record,), error=error, write_status=201)
            except TargetApiError as lookup:
                return Outcome(landed, Result.FAILED, error=f"{error}; the lookup failed: {lookup}")
        kept = remote_key(remote_id) == remote_key(delivery.record.get("id", ""))
        self.traits.learn_ids(kept=kept)
        return self._done(delivery, {**delivery.record, "id": remote_id}, answer, http_status=201)

    def _done(
        self, delivery: Delivery, record: Record, answer: Mapping, *, http_status: int
    ) -> Outcome:
        """A write the target applied: what it holds now, as it said it stored it."""
        kind = delivery.entity.kind
        stored = acknowledged(kind, record, answer)
        rewritten = frozenset(rewritten_fields(kind, record, stored))
        self.traits.learn_rewrites(kind, rewritten)
        return Outcome(
            delivery,
            Result.DONE,
            record=record,
            http_status=http_status,
            acknowledged=None if stored == our_fields(kind, record) else stored,
            rewritten=rewritten,
        )

    def _find(
        self,
        delivery: Delivery,
        sought,
        *,
        error: str = "",
        write_status: int | None = None,
        own_id_taken: bool = False,
    ) -> Outcome:
        """Look for the records holding these contents (the fields the target is known to
        rewrite compared normalised). Finding none on a target known to keep the ids it is
        sent, look at the record under the entity's own id: taken if it holds the content once
        texts are normalised (a rewrite not seen before)."""
        kind = delivery.entity.kind
        traits_version = self.traits.version
        rewritten = self.traits.rewrites(kind)
        sent_at = time.monotonic()
        contents = unique_contents(sought)
        found: list[Record] = []
        for wanted in contents:
            found += self.client.find(delivery.resource, wanted, rewritten=rewritten)
        close: list[Record] = []
        if not found and self.traits.keeps_ids and not own_id_taken:
            record = self.client.get(delivery.resource, delivery.entity.pk)
            if record is not None and any(holds(record, w, loose=True) for w in contents):
                close.append(record)
        return Outcome(
            delivery,
            Result.FOUND,
            candidates=unique_by_id(found),
            close_candidates=unique_by_id(close),
            error=error,
            http_status=200,
            sent_at=sent_at,
            answered_at=time.monotonic(),
            write_status=write_status if write_status is not None else delivery.write_status,
            own_id_taken=own_id_taken,
            traits_version=traits_version,
        )

    def _count(self, exc: TargetApiError | None) -> None:
        with self._lock:
            if exc is not None and exc.credentials_refused:
                self._unreachable_in_a_row = 0
                self._refused_in_a_row += 1
                if self._refused_in_a_row >= CIRCUIT_BREAKER_THRESHOLD:
                    self.stop.set(
                        f"stopped after {self._refused_in_a_row} calls in a row were refused "
                        f"the user and password (HTTP {exc.status}): {_check(exc.status)}"
                    )
                return
            self._refused_in_a_row = 0
            if exc is None or exc.status is not None:
                self._unreachable_in_a_row = 0
                return
            self._unreachable_in_a_row += 1
            if self._unreachable_in_a_row >= CIRCUIT_BREAKER_THRESHOLD:
                self.stop.set(
                    f"stopped after {self._unreachable_in_a_row} calls in a row found the "
                    "target unreachable"
                )


def _check(status: int | None) -> str:
    """Where the credentials a 401 (the target) or 407 (a proxy) refused are set."""
    if status == 407:
        return "check the proxy's in HTTP_PROXY or HTTPS_PROXY"
    return "check them in TARGET_URL or --url"


def _shown(value: object) -> str:
    """An id as a message shows it: at most 40 characters."""
    text = "none" if value is None else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def unique_contents(records) -> list[dict]:
    """Each distinct content once (records without their ids)."""
    seen: list[dict] = []
    for record in records:
        if record is not None and content(record) not in seen:
            seen.append(content(record))
    return seen
