"""Plain values passed between the run's modules: what the sync knows of an entity (SyncState)
and a full run's snapshot; what a run sends (a Delivery, one step of a call) and what came of it
(an Outcome); the steps a source or a round of decisions hands the run (Steps); the fields the
target rewrites; what a source offers (Source)."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

from sync.planner import Call, EntityKey, Kind, Op, Plan, Presence
from sync.target import Record, RemoteId, readable_id

if TYPE_CHECKING:
    from sync.syncing.report import FailedEntity, PlannedCall


@dataclass(frozen=True, slots=True)
class SyncState:
    """What the sync knows of an entity on the target, as a run reads it (EntitySyncState)."""

    remote_id: RemoteId | None = None
    delivered_hash: str = ""
    acknowledged_hash: str = ""
    remote_parent_key: str | None = None
    unconfirmed: bool = False
    unconfirmed_record: Record | None = None
    unconfirmed_run: int | None = None
    parked_at: datetime | None = None
    parked_event_id: int | None = None

    @property
    def presence(self) -> Presence | None:
        if self.remote_id is not None:
            return Presence.PRESENT
        if self.unconfirmed:
            return Presence.UNCONFIRMED
        return None  # nothing known: the events tell


class Delivered:
    """Entities the target is taken to hold as they are until it shows otherwise, by kind and
    remote key: each with its pk and the hash of the record last delivered, which is its record
    now. A full run over a million of them keeps only this: both in one int, negative once the
    target's record under that key was seen."""

    _PK_BITS = 64

    def __init__(self) -> None:
        self._by_kind: dict[Kind, dict[int | str, int]] = {kind: {} for kind in Kind}

    def add(self, kind: Kind, key: str, pk: int, digest: str) -> bool:
        """Keep an entity; False (kept not) when its hash or pk does not fit, or the key is
        taken."""
        slots = self._by_kind[kind]
        slot = _compact(key)
        if len(digest) != 32 or not 0 < pk < 1 << self._PK_BITS or slot in slots:
            return False
        try:
            slots[slot] = int(digest, 16) << self._PK_BITS | pk
        except ValueError:
            return False
        return True

    def seen(self, kind: Kind, key: str) -> tuple[int, int] | None:
        """The pk and the hash (as a number) of the entity under this key, marked seen; None
        when none of these is there."""
        slots = self._by_kind[kind]
        slot = _compact(key)
        packed = slots.get(slot)
        if packed is None:
            return None
        packed = abs(packed)
        slots[slot] = -packed
        return packed & ((1 << self._PK_BITS) - 1), packed >> self._PK_BITS

    def unseen(self, kind: Kind) -> list[tuple[str, int]]:
        """The keys (and pks) of the entities whose record the target was not seen to hold."""
        mask = (1 << self._PK_BITS) - 1
        slots = self._by_kind[kind].items()
        return [(str(slot), packed & mask) for slot, packed in slots if packed > 0]

    def remove(self, kind: Kind, key: str) -> None:
        del self._by_kind[kind][_compact(key)]

    def __contains__(self, slot: object) -> bool:
        """`(kind, remote key) in delivered`."""
        if not isinstance(slot, tuple) or len(slot) != 2:
            return False
        kind, key = slot
        return _compact(key) in self._by_kind[kind]

    def __len__(self) -> int:
        return sum(len(slots) for slots in self._by_kind.values())


def _compact(key: str) -> int | str:
    """A remote key as few bytes hold it: a number where its text is one (the text comes back
    as it was: str(int(key)) == key)."""
    if key.isascii() and key.isdigit() and (key == "0" or key[0] != "0"):
        return int(key)
    return key


@dataclass
class Snapshot:
    """A full run's view of the database, read in one transaction: pending events, and the sync
    state and record of every entity, but those taken to be delivered as they are (`delivered`,
    loaded in full once the target shows otherwise)."""

    events: dict[EntityKey, list[int]] = field(default_factory=dict)
    states: dict[EntityKey, SyncState] = field(default_factory=dict)
    records: dict[EntityKey, Record] = field(default_factory=dict)  # under the target's ids
    post_of: dict[EntityKey, int] = field(default_factory=dict)  # each comment's post pk
    delivered: Delivered = field(default_factory=Delivered)
    # The id on the target of each post whose id there is not its own pk (comments name it).
    post_ids: dict[int, RemoteId] = field(default_factory=dict)


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
    """One step of one planned call: a write, or a lookup (FIND).

    `record` is what the target should hold afterwards (for a POST or PUT, what is sent);
    `sought` are the contents a lookup looks for (the first, for an earlier create, is what that
    POST sent). `wrote` is True once a write for this call has been sent in this run, so a call
    counts once however many steps it took.
    """

    call: Call
    action: Action
    remote_id: RemoteId | None = None
    record: Record | None = None
    sought: tuple[Record, ...] = ()
    posts_sent: int = 0
    wrote: bool = False
    # A record of the target that no entity of ours holds (a full run deletes it).
    foreign: bool = False
    # The entity's first POST: no earlier one can have landed, so if it is never sent, the
    # target holds nothing of it (its create flag is lifted).
    first_post: bool = False
    # A POST (an earlier run's, or this run's answered 5xx or cut off) may still land until
    # this moment (time.monotonic()): a lookup that finds nothing before it is not final.
    may_land_until: float = 0.0
    # The status this run's POST was answered with, for a lookup made after it: a create the
    # target answered but no lookup finds counts towards parking.
    write_status: int | None = None
    # The target said it created the record (2xx) without naming it: it is not sent again.
    landed: bool = False
    # Not sent before this moment (time.monotonic()): a lookup waits for a POST that may land.
    not_before: float = 0.0
    # A PUT that makes a record a lookup found ours: the record is taken as the entity's before
    # the PUT goes, so a PUT that lands unanswered is not followed by a create.
    adopts: bool = False

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
    # FOUND: the record under the entity's own id was there before its first POST.
    own_id_taken: bool = False
    # FOUND: what was known of the target when the lookup was sent (TargetTraits.version).
    traits_version: int = 0

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
class Steps:
    """What a source or a round of decisions hands the run: steps to send, and final outcomes
    reached without a call (settled: recorded as they are)."""

    to_send: list[Delivery] = field(default_factory=list)
    settled: list[Outcome] = field(default_factory=list)


class TargetTraits:
    """What the target is known to do: the fields it rewrites, by kind, and whether it keeps the
    ids it is sent. Known when a run starts, and learned as its answers show them (any worker
    thread may learn); `version` counts what was learned."""

    def __init__(
        self, rewrites: Mapping[str, Iterable[str]] | None = None, keeps_ids: bool | None = None
    ) -> None:
        rewrites = rewrites or {}
        self._fields = {kind: frozenset(rewrites.get(kind.value, ())) for kind in Kind}
        self.keeps_ids = keeps_ids
        self._lock = threading.Lock()
        self.changed = False
        self.version = 0

    def rewrites(self, kind: Kind) -> frozenset[str]:
        return self._fields[kind]

    def learn_rewrites(self, kind: Kind, fields: Iterable[str]) -> None:
        new = frozenset(fields) - self._fields[kind]
        if new:
            with self._lock:
                self._fields[kind] = self._fields[kind] | new
                self.changed = True
                self.version += 1

    def learn_ids(self, *, kept: bool) -> None:
        """A create was answered with an id: the one it was sent (kept), or another."""
        if self.keeps_ids is not kept:
            with self._lock:
                # Once seen picking its own, the target is never again taken to keep ours.
                self.keeps_ids = kept if self.keeps_ids is None else False
                self.changed = True
                self.version += 1

    def rewrites_json(self) -> dict[str, list[str]]:
        return {kind.value: sorted(fields) for kind, fields in self._fields.items() if fields}


class Source(Protocol):
    """What a run delivers: the pending events (`incremental`) or a snapshot diffed with the
    target (`full`). The run drives it and it never calls the run back: `plan` (reads only,
    plus the target's lists), then, unless it is a dry run, `prepare` (the writes the plan
    needs before any call), then `first_steps` for each batch of calls."""

    events_pending: int
    planned: tuple[PlannedCall, ...]
    unchanged: int  # of a dry run: entities planned that need no call
    notices: list[str]
    skipped: list[FailedEntity]  # left out of the plan (parked), reported as failed

    def plan(self, *, dry_run: bool) -> Plan: ...

    def prepare(self) -> Steps: ...

    def first_steps(self, calls: tuple[Call, ...]) -> Steps: ...
