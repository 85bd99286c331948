"""What a run sends (a Delivery) and what came of it (an Outcome): plain values between layers."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from sync.planner import Call, EntityKey

Record = dict[str, Any]


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
    `lookups` are the contents a FIND looks for. `wrote` is True once a write for this call has
    been sent in this run, so a call counts once however many steps it took.
    """

    call: Call
    action: Action
    remote_id: int | None = None
    record: Record | None = None
    lookups: tuple[Record, ...] = ()
    posts_sent: int = 0
    wrote: bool = False
    # A record of the target that no entity of ours holds (a full run deletes it).
    foreign: bool = False
    # The entity's first POST: no earlier one can have landed, so if it is never sent, the
    # target holds nothing of it (its create flag is lifted).
    first_post: bool = False

    @property
    def entity(self) -> EntityKey:
        return self.call.key

    @property
    def resource(self) -> str:
        return self.call.key.kind.resource

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
    no_call: bool = False  # DONE without any write in this run
    # When a lookup's or a DELETE's first request went out and its last answer came back
    # (time.monotonic()): what the target held in between is uncertain.
    sent_at: float = 0.0
    answered_at: float = 0.0

    @property
    def ok(self) -> bool:
        return self.result is Result.DONE

    @property
    def remote_id(self) -> int | None:
        if self.record is not None and isinstance(self.record.get("id"), int):
            return self.record["id"]
        return self.delivery.remote_id


@dataclass
class Followups:
    """Steps a round leaves for the next one, and outcomes settled without a call."""

    deliveries: list[Delivery] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
