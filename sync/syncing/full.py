"""A full run: make the target's records equal to the database's rows, whatever drifted.

The rows, the sync states and the pending events are read from one snapshot (on PostgreSQL a
REPEATABLE READ transaction), so the events it settles are exactly those whose effect the rows
it sends show. A change committed after the snapshot stays pending for the next run. Creates are
flagged before they are sent, as in an incremental run, so a killed full run is safe too.

The target's records are keyed by the text of their ids (`remote_key`), whatever their type. An
entity's events are settled only where the target is seen to hold its state already, or in the
transaction that records its delivered call; an entity whose create may have landed unanswered
is looked for by its content, as in an incremental run, and never settled beforehand.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from django.db import connection, transaction

from sync.errors import FullRunRefused
from sync.models import EntitySyncState, ModelEvent
from sync.planner import Call, EntityKey, Kind, Op, Plan, plan_full, sort_calls
from sync.syncing import loading, outcomes
from sync.syncing.deliveries import Action, Delivery, Followups
from sync.syncing.report import PlannedCall
from sync.target import (
    ID_FIELDS,
    KINDS,
    MODELS,
    Record,
    RemoteId,
    comparable_id,
    holds,
    our_fields,
    readable_id,
    record_hash,
    remote_key,
    to_record,
)

if TYPE_CHECKING:
    from sync.syncing.run import Runner

# Records the refusal of a full run lists, of those it would delete.
REFUSAL_LISTED = 20


@dataclass(frozen=True)
class Known:
    remote_id: RemoteId | None
    delivered_hash: str
    acknowledged_hash: str = ""
    unconfirmed: bool = False
    unconfirmed_record: Record | None = None
    unconfirmed_run: int | None = None


@dataclass
class Snapshot:
    events: dict[EntityKey, list[int]] = field(default_factory=dict)
    states: dict[EntityKey, Known] = field(default_factory=dict)
    records: dict[EntityKey, Record] = field(default_factory=dict)  # under the target's ids
    post_of: dict[EntityKey, int] = field(default_factory=dict)  # each comment's post pk


def read_snapshot() -> Snapshot:
    snap = Snapshot()
    # Only a transaction of its own can be made REPEATABLE READ (not one nested in another).
    own_transaction = not connection.in_atomic_block
    with transaction.atomic():
        if connection.vendor == "postgresql" and own_transaction:
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        pending = ModelEvent.objects.pending().filter(entity_table__in=KINDS).order_by("id")
        for event_id, table, pk in pending.values_list("id", "entity_table", "entity_pk").iterator(
            chunk_size=5000
        ):
            snap.events.setdefault(EntityKey(KINDS[table], pk), []).append(event_id)
        states = EntitySyncState.objects.filter(entity_table__in=KINDS).values_list(
            "entity_table",
            "entity_pk",
            "remote_id",
            "delivered_hash",
            "acknowledged_hash",
            "create_unconfirmed",
            "unconfirmed_record",
            "unconfirmed_run",
        )
        for table, pk, *known in states.iterator(chunk_size=5000):
            snap.states[EntityKey(KINDS[table], pk)] = Known(*known)
        post_ids: dict[int, RemoteId] = {}
        for kind, model in MODELS.items():
            for obj in model.objects.order_by("pk").iterator(chunk_size=5000):
                key = EntityKey(kind, obj.pk)
                remote_id = _remote_id(snap, key)
                if kind is Kind.POST:
                    post_ids[obj.pk] = remote_id
                    snap.records[key] = to_record(obj, remote_id=remote_id)
                else:
                    snap.post_of[key] = obj.post_id
                    snap.records[key] = to_record(
                        obj, remote_id=remote_id, post_remote_id=post_ids.get(obj.post_id)
                    )
    return snap


def _remote_id(snap: Snapshot, key: EntityKey) -> RemoteId:
    known = snap.states.get(key)
    return key.pk if known is None or known.remote_id is None else known.remote_id


@dataclass
class Diff:
    """The target's records against the snapshot, by remote key."""

    owner: dict[tuple[Kind, str], EntityKey] = field(default_factory=dict)
    clashes: set[EntityKey] = field(default_factory=set)
    lookups: list[EntityKey] = field(default_factory=list)  # unconfirmed creates
    foreign: list[tuple[Kind, Record]] = field(default_factory=list)
    unaddressable: int = 0


def run(runner: Runner) -> None:
    snap = read_snapshot()
    runner.report.events_pending = sum(len(ids) for ids in snap.events.values())
    remote = {kind: runner.client.list(kind.resource) for kind in Kind}
    diff = _diff(snap, remote)
    rewrites = runner.dispatcher.rewrites
    local: dict[EntityKey, Record] = {}
    theirs: dict[EntityKey, Record] = {}
    remote_by_key = {
        (kind, key): record
        for kind, records in remote.items()
        for record in records
        if (key := _key(record)) is not None
    }
    for slot, entity in diff.owner.items():
        record = remote_by_key.get(slot)
        if entity in snap.records:
            local[entity] = _comparable(snap.records[entity])
        if record is None:
            continue
        theirs[entity] = _comparable(our_fields(entity.kind, record))
        if entity in snap.records and _holds_already(
            entity.kind,
            record,
            snap.records[entity],
            snap.states.get(entity),
            rewrites.of(entity.kind),
        ):
            theirs[entity] = local[entity]
    plan = plan_full(local, theirs)
    until = _landing_deadlines(snap, diff.lookups, runner.client.timeout)
    steps = [_step(call, snap, diff) for call in plan.calls]
    steps += [_lookup_step(key, snap, until.get(key.pk, 0.0)) for key in diff.lookups]
    # A row whose own id another entity holds on the target is not there yet: create it.
    steps += [
        Delivery(
            Call(Op.CREATE, key, tuple(snap.events.get(key, ()))),
            Action.POST,
            record={**snap.records[key], "id": key.pk},
        )
        for key in sorted(diff.clashes)
    ]
    # Records of no entity of ours get keys of their own: negative, in the order of their ids.
    ordered = sorted(diff.foreign, key=lambda item: _id_order(item[1]))
    foreign = [
        Delivery(
            Call(Op.DELETE, EntityKey(kind, n - len(ordered))),
            Action.DELETE,
            remote_id=readable_id(record["id"]),
            foreign=True,
        )
        for n, (kind, record) in enumerate(ordered)
    ]
    steps += foreign
    runner.report.planned = tuple(
        PlannedCall(step.call, step.remote_id, foreign=step.foreign) for step in steps
    )
    if diff.unaddressable:
        runner.report.notice(
            f"{diff.unaddressable} records of the target have no usable id; they were left alone"
        )
    cap = runner.options.max_foreign_deletes
    if cap is not None and len(foreign) > cap:
        refusal = _refusal(foreign, cap)
        if runner.dry_run:
            runner.report.notice(refusal)
            return
        raise FullRunRefused(refusal)
    if runner.dry_run:
        return
    called = {step.entity for step in steps if not step.foreign}
    _settle_what_needs_no_call(snap, diff, remote_by_key, called)
    by_call = {step.call: step for step in steps}
    runner.deliver(
        Plan(calls=sort_calls(by_call)),
        lambda batch: Followups(deliveries=_with_current_posts([by_call[c] for c in batch], snap)),
    )


def _key(record: Record) -> str | None:
    value = readable_id(record.get("id"))
    return None if value is None else remote_key(value)


def _id_order(record: Record) -> tuple[int, int, str]:
    """Numbers first, in order, then texts."""
    ident = comparable_id(record["id"])
    if isinstance(ident, int):
        return (0, ident, "")
    return (1, 0, str(ident))


def _comparable(record: Record) -> Record:
    """A record as the plan compares it: ids by their text ("5" and 5 alike)."""
    return {
        name: comparable_id(value) if name in ID_FIELDS else value for name, value in record.items()
    }


def _holds_already(
    kind: Kind, found: Record, ours: Record, known: Known | None, rewritten: frozenset[str]
) -> bool:
    """The target holds our record, as it stores it: equal but for the fields it is known to
    rewrite, or exactly what it acknowledged when we last sent this very record."""
    if holds(found, ours, rewritten=rewritten):
        return True
    if known is None or not known.acknowledged_hash:
        return False
    stored = our_fields(kind, found)
    return known.delivered_hash == record_hash(ours) and known.acknowledged_hash == record_hash(
        stored
    )


def _diff(snap: Snapshot, remote: dict[Kind, list[Record]]) -> Diff:
    """Who holds which of the target's records.

    Mapped entities hold the record under their remote id. An entity whose create is
    unconfirmed holds the record under its own id only if that record holds what it sent (a
    target that keeps the ids it is sent); otherwise it is looked for by its content. Other
    rows without a mapping are taken to be under their own id, as the import keeps ids; one
    whose own id another entity holds is a clash, to be created. Records nobody holds, and
    that hold no unconfirmed create's content, are foreign.
    """
    diff = Diff()
    by_key: dict[tuple[Kind, str], Record] = {}
    for kind, records in remote.items():
        for record in records:
            key = _key(record)
            if key is None:
                diff.unaddressable += 1
            else:
                by_key.setdefault((kind, key), record)
    mapped = [k for k, known in snap.states.items() if known.remote_id is not None]
    for entity in sorted(mapped):
        diff.owner[(entity.kind, remote_key(snap.states[entity].remote_id))] = entity
    unconfirmed: list[tuple[EntityKey, tuple[Record, ...]]] = []
    for entity in sorted(snap.records.keys() | snap.states.keys()):
        known = snap.states.get(entity)
        if known is not None and known.remote_id is not None:
            continue
        slot = (entity.kind, remote_key(entity.pk))
        if known is not None and known.unconfirmed:
            contents = _contents_of(entity, snap)
            record = by_key.get(slot)
            own = record is not None and slot not in diff.owner
            if own and any(holds(record, wanted) for wanted in contents):
                diff.owner[slot] = entity
            else:
                diff.lookups.append(entity)
                unconfirmed.append((entity, contents))
            continue
        if entity not in snap.records:
            continue  # gone, and never on the target
        if slot in diff.owner:
            diff.clashes.add(entity)
        else:
            diff.owner[slot] = entity
    for (kind, key), record in by_key.items():
        if (kind, key) in diff.owner:
            continue
        sought = [
            wanted for entity, contents in unconfirmed if entity.kind is kind for wanted in contents
        ]
        if any(holds(record, wanted, loose=True) for wanted in sought):
            continue  # maybe an unconfirmed create's: its lookup decides
        diff.foreign.append((kind, record))
    return diff


def _contents_of(entity: EntityKey, snap: Snapshot) -> tuple[Record, ...]:
    """What an unconfirmed create may have left on the target: what it sent, and the row now."""
    known = snap.states.get(entity)
    sent = known.unconfirmed_record if known is not None else None
    return tuple(r for r in (sent, snap.records.get(entity)) if r)


def _landing_deadlines(
    snap: Snapshot, keys: list[EntityKey], settle_time: float
) -> dict[int, float]:
    states = [
        EntitySyncState(
            entity_pk=key.pk,
            create_unconfirmed=True,
            unconfirmed_run=snap.states[key].unconfirmed_run,
        )
        for key in keys
    ]
    deadlines = loading.landing_deadlines(states, settle_time=settle_time)
    now_unix, now = time.time(), time.monotonic()
    return {
        pk: until if until in (0.0, float("inf")) else now + (until - now_unix)
        for pk, until in deadlines.items()
    }


def _lookup_step(key: EntityKey, snap: Snapshot, may_land_until: float) -> Delivery:
    """An unconfirmed create: looked for by its content; found, it is made equal (or deleted, if
    its row is gone); not found, it is created (or nothing, if its row is gone)."""
    events = tuple(snap.events.get(key, ()))
    contents = _contents_of(key, snap)
    if key not in snap.records:
        return Delivery(
            Call(Op.DELETE, key, events),
            Action.FIND,
            lookups=contents,
            may_land_until=may_land_until,
        )
    record = {**snap.records[key], "id": key.pk}
    return Delivery(
        Call(Op.CREATE, key, events),
        Action.FIND,
        record=record,
        lookups=contents,
        may_land_until=may_land_until,
    )


def _step(call: Call, snap: Snapshot, diff: Diff) -> Delivery:
    """A planned call of an entity as its first step."""
    key = call.key
    entity_call = Call(call.op, key, tuple(snap.events.get(key, ())))
    remote_id = _remote_id(snap, key)
    if call.op is Op.DELETE:
        return Delivery(entity_call, Action.DELETE, remote_id=remote_id)
    record = snap.records[key]
    if call.op is Op.CREATE:
        return Delivery(entity_call, Action.POST, record={**record, "id": key.pk})
    return Delivery(entity_call, Action.PUT, remote_id=remote_id, record=record)


def _refusal(foreign: list[Delivery], cap: int) -> str:
    listed = ", ".join(f"{step.resource}/{step.remote_id}" for step in foreign[:REFUSAL_LISTED]) + (
        f" and {len(foreign) - REFUSAL_LISTED} more" if len(foreign) > REFUSAL_LISTED else ""
    )
    return (
        f"--full would delete {len(foreign)} records of the target that the database lacks "
        f"({listed}), more than SYNC_FULL_MAX_DELETES ({cap}); nothing was sent. Check the "
        "target URL; if they must go, run it again with --allow-deletes"
    )


def _settle_what_needs_no_call(
    snap: Snapshot,
    diff: Diff,
    remote: dict[tuple[Kind, str], Record],
    called: set[EntityKey],
) -> None:
    """Entities the target is seen to match: their events are settled, their state recorded.

    Deleted entities whose record the target does not hold are settled and forgotten; those
    whose create is unconfirmed are not: their lookup settles them once delivered.
    """
    equal = [
        entity
        for slot, entity in diff.owner.items()
        if entity not in called and slot in remote and entity in snap.records
    ]
    stale = [
        outcomes.delivered_state(key, snap.records[key])
        for key in equal
        if (known := snap.states.get(key)) is None
        or known.remote_id is None
        or remote_key(known.remote_id) != remote_key(snap.records[key]["id"])
        or known.delivered_hash != record_hash(snap.records[key])
    ]
    quiet = [key for key in snap.events if key not in called]
    gone = [key for key in quiet if key not in snap.records and key in snap.states]
    with transaction.atomic():
        outcomes.upsert_states(stale, outcomes.DELIVERED_FIELDS)
        outcomes.forget(gone)
        outcomes.mark_synced(event_id for key in quiet for event_id in snap.events[key])


def _with_current_posts(steps: list[Delivery], snap: Snapshot) -> list[Delivery]:
    """Comments carry their post's id on the target as it is now (a post may be new)."""
    comments = [s for s in steps if s.entity.kind is Kind.COMMENT and s.record is not None]
    if not comments:
        return steps
    post_ids = loading.post_remote_ids_of(snap.post_of[s.entity] for s in comments)
    current = []
    for step in steps:
        post_pk = snap.post_of.get(step.entity)
        if step in comments and post_pk in post_ids:
            record = {**step.record, "postId": post_ids[post_pk]}
            lookups = step.lookups
            step = Delivery(
                step.call,
                step.action,
                step.remote_id,
                record,
                lookups=lookups,
                may_land_until=step.may_land_until,
            )
        current.append(step)
    return current
