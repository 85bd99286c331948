"""Turns pending change events into the fewest calls to the target, in a safe order.

Pure code: events and target snapshots in, ordered calls out. No ORM, no HTTP, no settings.

Merge rules for the pending events of one entity, by what the target holds before them:

- not on the target, exists now                        -> one POST;
- on the target, exists now                            -> one PUT (left out by the delivery when
                                                          the target already holds that record);
- on the target, deleted now                           -> one DELETE;
- not on the target, deleted now                       -> no call.

Whether the target holds an entity is known from its sync state (`Presence`); without one it is
read from the events: an entity whose first pending event is CREATED is not there yet. An entity
whose POST may have landed without an answer is UNCONFIRMED: it is sent as a POST or DELETE that
the delivery resolves by looking for the record first.

A target that deletes a post's comments with it (`cascade_deletes`) needs no call for a comment
whose post is deleted in the same plan: that comment is settled by its post's DELETE.

Order: calls go in waves, each starting once the one before has finished; within a wave they are
independent and may run in parallel, in phase order (post creates, post updates, comment creates,
comment updates, comment deletes, post deletes). A wave waits only for what a call needs first:

- a comment's create or update waits for its post's create (it carries the post's id there);
- a comment's delete waits for every comment create: a target that gives a new record the
  highest id plus one would otherwise give a create the id a delete just freed, and a DELETE
  sent again after a lost answer would remove that new record;
- a post's delete waits for every call but post updates: the post creates (the same reason),
  and every comment call (a target that deletes a post's comments with it would otherwise take
  a comment that a PUT moves off that post, or that a lookup found there, and answer a comment's
  DELETE 404).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum


class Kind(StrEnum):
    POST = "post"
    COMMENT = "comment"

    @property
    def resource(self) -> str:
        """The target's collection for this kind: /posts or /comments."""
        return f"{self.value}s"


class Op(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"

    @property
    def method(self) -> str:
        return {"create": "POST", "update": "PUT", "delete": "DELETE"}[self.value]


class EventType(StrEnum):
    CREATED = "CREATED"
    UPDATED = "UPDATED"
    DELETED = "DELETED"


class Presence(StrEnum):
    """What the target holds of an entity before its pending events."""

    ABSENT = "absent"
    PRESENT = "present"
    UNCONFIRMED = "unconfirmed"  # a POST may have landed without an answer


class Phase(IntEnum):
    """The order of a plan's calls, and of the calls within a wave (`Plan.waves`)."""

    POST_CREATE = 1
    POST_UPDATE = 2
    COMMENT_CREATE = 3
    COMMENT_UPDATE = 4
    COMMENT_DELETE = 5
    POST_DELETE = 6


PHASES: dict[tuple[Kind, Op], Phase] = {
    (Kind.POST, Op.CREATE): Phase.POST_CREATE,
    (Kind.POST, Op.UPDATE): Phase.POST_UPDATE,
    (Kind.COMMENT, Op.CREATE): Phase.COMMENT_CREATE,
    (Kind.COMMENT, Op.UPDATE): Phase.COMMENT_UPDATE,
    (Kind.COMMENT, Op.DELETE): Phase.COMMENT_DELETE,
    (Kind.POST, Op.DELETE): Phase.POST_DELETE,
}


@dataclass(frozen=True, order=True)
class EntityKey:
    kind: Kind
    pk: int

    def __str__(self) -> str:
        return f"{self.kind.value} {self.pk}"


@dataclass(frozen=True)
class Event:
    id: int
    key: EntityKey
    type: EventType


@dataclass(frozen=True)
class Call:
    """One HTTP call for one entity, and the events it settles once it has succeeded."""

    op: Op
    key: EntityKey
    event_ids: tuple[int, ...] = ()
    # Other entities this call settles too (comments removed by their post's DELETE).
    covers: tuple[EntityKey, ...] = ()

    @property
    def phase(self) -> Phase:
        return PHASES[(self.key.kind, self.op)]

    def __str__(self) -> str:
        return f"{self.op.method} {self.key}"


@dataclass(frozen=True)
class Plan:
    calls: tuple[Call, ...]
    # Events that need no call at all (created and deleted again between two syncs).
    settled_event_ids: tuple[int, ...] = ()
    # The post of each comment created or updated, where the source knows it. A comment whose
    # post is unknown waits for every post create of the plan.
    posts: Mapping[EntityKey, EntityKey] = field(default_factory=dict)

    def waves(self) -> list[tuple[Call, ...]]:
        """The calls in waves, in sending order; each wave's calls in phase order (module
        docstring), empty waves left out."""
        created = {c.key for c in self.calls if c.key.kind is Kind.POST and c.op is Op.CREATE}
        wave_of: dict[Call, int] = {}
        for call in self.calls:
            if call.key.kind is Kind.COMMENT and call.op is not Op.DELETE and created:
                post = self.posts.get(call.key)
                wave_of[call] = 1 if post is None or post in created else 0
            elif call.op is not Op.DELETE:
                wave_of[call] = 0
        comment_creates = [w for c, w in wave_of.items() if _is(c, Kind.COMMENT, Op.CREATE)]
        comment_deletes = 1 + max(comment_creates) if comment_creates else 0
        for call in self.calls:
            if _is(call, Kind.COMMENT, Op.DELETE):
                wave_of[call] = comment_deletes
        waited_for = [w for c, w in wave_of.items() if not _is(c, Kind.POST, Op.UPDATE)]
        post_deletes = 1 + max(waited_for) if waited_for else 0
        waves: list[list[Call]] = [[] for _ in range(4)]
        for call in self.calls:
            waves[wave_of.get(call, post_deletes)].append(call)
        return [tuple(wave) for wave in waves if wave]

    def count(self, op: Op) -> int:
        return sum(1 for call in self.calls if call.op is op)


@dataclass(frozen=True)
class EntityHistory:
    """The pending events of one entity, oldest first."""

    key: EntityKey
    events: tuple[Event, ...] = field(default_factory=tuple)

    def merged_op(self, presence: Presence | None = None) -> Op | None:
        """The single call that brings the target from before the first event to after the last."""
        if presence is None:
            first_created = self.events[0].type is EventType.CREATED
            presence = Presence.ABSENT if first_created else Presence.PRESENT
        if self.events[-1].type is not EventType.DELETED:
            return Op.UPDATE if presence is Presence.PRESENT else Op.CREATE
        return None if presence is Presence.ABSENT else Op.DELETE


def _is(call: Call, kind: Kind, op: Op) -> bool:
    return call.key.kind is kind and call.op is op


def group_events(events: Iterable[Event]) -> list[EntityHistory]:
    """Pending events grouped per entity, each group oldest first, groups by first event."""
    grouped: dict[EntityKey, list[Event]] = {}
    for event in sorted(events, key=lambda e: e.id):
        grouped.setdefault(event.key, []).append(event)
    return [EntityHistory(key, tuple(evts)) for key, evts in grouped.items()]


def sort_calls(calls: Iterable[Call]) -> tuple[Call, ...]:
    return tuple(sorted(calls, key=lambda call: (call.phase, call.key.pk)))


def plan_calls(
    events: Iterable[Event],
    *,
    presence: Mapping[EntityKey, Presence] | None = None,
    parents: Mapping[EntityKey, EntityKey] | None = None,
    cascade_deletes: bool = False,
) -> Plan:
    """Merge pending events into at most one call per entity, in sending order.

    `presence` tells what the target holds where the sync state knows it; `parents` names the
    post of each comment on the target, for `cascade_deletes`.
    """
    presence = presence or {}
    calls: dict[EntityKey, Call] = {}
    settled: list[int] = []
    for history in group_events(events):
        event_ids = tuple(event.id for event in history.events)
        op = history.merged_op(presence.get(history.key))
        if op is None:
            settled.extend(event_ids)
        else:
            calls[history.key] = Call(op, history.key, event_ids)
    if cascade_deletes and parents:
        _fold_cascaded_deletes(calls, parents)
    return Plan(calls=sort_calls(calls.values()), settled_event_ids=tuple(sorted(settled)))


def _fold_cascaded_deletes(
    calls: dict[EntityKey, Call], parents: Mapping[EntityKey, EntityKey]
) -> None:
    """Drop the DELETE of each comment whose post is deleted too; the post's call settles it."""
    for key, call in list(calls.items()):
        post = parents.get(key)
        if post is None:
            continue
        post_call = calls.get(post)
        if call.op is not Op.DELETE or post_call is None or post_call.op is not Op.DELETE:
            continue
        del calls[key]
        calls[post] = Call(
            Op.DELETE,
            post,
            tuple(sorted(post_call.event_ids + call.event_ids)),
            post_call.covers + (key,),
        )


def plan_full(
    local: Mapping[EntityKey, Mapping[str, object]],
    remote: Mapping[EntityKey, Mapping[str, object]],
) -> Plan:
    """Calls that make the target's records (`remote`) equal to ours (`local`).

    Both sides are keyed by the entity's id on the target and hold target-shaped payloads:
    create what is missing, update what differs, delete what the target has extra.
    """
    calls = [Call(Op.CREATE, key) for key in local.keys() - remote.keys()]
    calls += [
        Call(Op.UPDATE, key)
        for key in local.keys() & remote.keys()
        if not payloads_equal(local[key], remote[key])
    ]
    calls += [Call(Op.DELETE, key) for key in remote.keys() - local.keys()]
    return Plan(calls=sort_calls(calls))


def payloads_equal(ours: Mapping[str, object], theirs: Mapping[str, object]) -> bool:
    """Equal on every field we send; fields only the target has are ignored."""
    return all(name in theirs and theirs[name] == value for name, value in ours.items())
