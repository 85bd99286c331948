"""What a run sends (a Delivery) and what came of it (an Outcome): plain values between layers."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from sync.planner import Call, EntityKey, Kind, Op
from sync.target import Record, RemoteId, readable_id


class Action(StrEnum):
    """One HTTP step; FIND looks for records by content (a GET with equality filters)."""

    POST = "POST"
    PUT = "PUT"
    DELETE = "DELETE"
    FIND = "FIND"


class Result(StrEnum):
    DONE = "done"  # the target holds what it should for this entity
    FAILED = "failed"
    FOUND = "found"  # FIND answered: `candidates` may hold the entity's record
    GONE = "gone"  # a PUT found no record to update: create it again


@dataclass(frozen=True)
class Delivery:
    """One step for one planned call.

    `record` is what the target should hold afterwards (for a POST or PUT, what is sent);
    `lookups` are the contents a FIND looks for (the first, for an earlier create, is what that
    POST sent). `wrote` is True once a write for this call has been sent in this run, so a call
    counts once however many steps it took.
    """

    call: Call
    action: Action
    remote_id: RemoteId | None = None
    record: Record | None = None
    lookups: tuple[Record, ...] = ()
    posts_sent: int = 0
    wrote: bool = False
    # A record of the target that no entity of ours holds (a full run deletes it).
    foreign: bool = False
    # The entity's first POST: no earlier one can have landed, so if it is never sent, the
    # target holds nothing of it (its create flag is lifted).
    first_post: bool = False
    # A POST of an earlier run may still land until this moment (time.monotonic()): a lookup
    # that finds nothing before it is not final.
    may_land_until: float = 0.0
    # The target said it created the record (2xx) without naming it: it is not sent again.
    landed: bool = False
    # Not sent before this moment (time.monotonic()): a lookup waits for a POST that may land.
    not_before: float = 0.0

    @property
    def entity(self) -> EntityKey:
        return self.call.key

    @property
    def resource(self) -> str:
        return self.call.key.kind.resource

    @property
    def op(self) -> Op:
        """What the target saw done, as the report counts it: a POST creates, whatever the plan
        said (a PUT answered 404 creates the record again)."""
        return Op.CREATE if self.action is Action.POST else self.call.op

    def __str__(self) -> str:
        if self.action is Action.FIND:
            return f"GET /{self.resource}?... (looking for {self.entity})"
        path = f"/{self.resource}" + ("" if self.remote_id is None else f"/{self.remote_id}")
        return f"{self.action.value} {path} ({self.entity})"


@dataclass(frozen=True)
class Outcome:
    delivery: Delivery
    result: Result
    record: Record | None = None  # what the target now holds (DONE)
    candidates: tuple[Record, ...] = ()
    error: str = ""
    http_status: int | None = None
    permanent: bool = False
    sent: bool = True  # False: decided without a call, or never sent
    stopped: bool = False  # never sent: the run was stopping
    no_call: bool = False  # DONE without any write in this run
    # When a lookup's or a DELETE's first request went out and its last answer came back
    # (time.monotonic()): what the target held in between is uncertain.
    sent_at: float = 0.0
    answered_at: float = 0.0
    # The status of the write whose answer was lost or unusable (a FIND after a POST).
    write_status: int | None = None
    # Records a lookup found only when texts are compared normalised (a target that rewrites).
    close_candidates: tuple[Record, ...] = ()
    # DONE: the record as the target said it stored it (our fields), when it said so.
    acknowledged: Record | None = None
    # Fields the target was seen to store otherwise than they were sent.
    rewritten: frozenset[str] = frozenset()

    @property
    def ok(self) -> bool:
        return self.result is Result.DONE

    @property
    def remote_id(self) -> RemoteId | None:
        if self.record is not None:
            found = readable_id(self.record.get("id"))
            if found is not None:
                return found
        return self.delivery.remote_id


@dataclass
class Followups:
    """Steps a round leaves for the next one, and outcomes settled without a call."""

    deliveries: list[Delivery] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)


class Rewrites:
    """The fields the target rewrites, by kind: known when a run starts, and learned as its
    answers show them (any worker thread may learn)."""

    def __init__(self, known: Mapping[str, Iterable[str]] | None = None) -> None:
        known = known or {}
        self._fields = {kind: frozenset(known.get(kind.value, ())) for kind in Kind}
        self._lock = threading.Lock()
        self.changed = False

    def of(self, kind: Kind) -> frozenset[str]:
        return self._fields[kind]

    def learn(self, kind: Kind, fields: Iterable[str]) -> None:
        new = frozenset(fields) - self._fields[kind]
        if new:
            with self._lock:
                self._fields[kind] = self._fields[kind] | new
                self.changed = True

    def as_json(self) -> dict[str, list[str]]:
        return {kind.value: sorted(fields) for kind, fields in self._fields.items() if fields}
