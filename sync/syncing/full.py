"""A full run: make the target's records equal to the database's rows, whatever drifted.

The rows, the sync states and the pending events are read from one snapshot (on PostgreSQL a
REPEATABLE READ transaction), so the events it settles are exactly those whose effect the rows
it sends show. A change committed after the snapshot stays pending for the next run. Creates are
flagged before they are sent, as in an incremental run, so a killed full run is safe too.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.db import connection, transaction

from sync.models import EntitySyncState, ModelEvent
from sync.planner import Call, EntityKey, Kind, Op, Plan, plan_full, sort_calls
from sync.syncing import outcomes
from sync.syncing.deliveries import Action, Delivery, Followups
from sync.syncing.report import PlannedCall
from sync.target import KINDS, MODELS, TABLES, record_hash, to_record

if TYPE_CHECKING:
    from sync.syncing.run import Runner

Record = dict[str, Any]


@dataclass(frozen=True)
class Known:
    remote_id: int | None
    delivered_hash: str


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
            "entity_table", "entity_pk", "remote_id", "delivered_hash"
        )
        for table, pk, remote_id, delivered_hash in states.iterator(chunk_size=5000):
            snap.states[EntityKey(KINDS[table], pk)] = Known(remote_id, delivered_hash)
        post_ids: dict[int, int] = {}
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


def _remote_id(snap: Snapshot, key: EntityKey) -> int:
    known = snap.states.get(key)
    return key.pk if known is None or known.remote_id is None else known.remote_id


def run(runner: Runner) -> None:
    snap = read_snapshot()
    runner.report.events_pending = sum(len(ids) for ids in snap.events.values())
    remote = {
        EntityKey(kind, record["id"]): record
        for kind in Kind
        for record in runner.client.list(kind.resource)
        if isinstance(record.get("id"), int) and not isinstance(record.get("id"), bool)
    }
    owner, clashes = _owners(snap)
    local = {remote_key: snap.records[key] for remote_key, key in owner.items()}
    plan = plan_full(local, remote)
    holders = {
        EntityKey(key.kind, known.remote_id): key
        for key, known in snap.states.items()
        if known.remote_id is not None and key not in snap.records
    }
    steps = [_first_step(call, snap, owner, holders) for call in plan.calls]
    # A row whose own id another entity holds on the target is not there yet: create it.
    steps += [
        Delivery(
            Call(Op.CREATE, key, tuple(snap.events.get(key, ()))),
            Action.POST,
            record={**snap.records[key], "id": key.pk},
        )
        for key in sorted(clashes)
    ]
    runner.report.planned = tuple(
        PlannedCall(step.call, step.remote_id, foreign=step.foreign) for step in steps
    )
    if runner.dry_run:
        return
    called = {step.entity for step in steps if not step.foreign}
    _settle_what_needs_no_call(snap, owner, remote, called)
    by_call = {step.call: step for step in steps}
    runner.deliver(
        Plan(calls=sort_calls(by_call)),
        lambda batch: Followups(deliveries=_with_current_posts([by_call[c] for c in batch], snap)),
    )


def _owners(snap: Snapshot) -> tuple[dict[EntityKey, EntityKey], set[EntityKey]]:
    """Each record id on the target -> the entity that holds it; mapped entities go first.

    An entity whose own id (it has no mapping) is held by another is a clash: not keyed.
    """
    owner: dict[EntityKey, EntityKey] = {}
    clashes: set[EntityKey] = set()
    mapped_first = sorted(
        snap.records,
        key=lambda key: (getattr(snap.states.get(key), "remote_id", None) is None, key),
    )
    for key in mapped_first:
        remote_key = EntityKey(key.kind, snap.records[key]["id"])
        if remote_key in owner:
            clashes.add(key)
        else:
            owner[remote_key] = key
    return owner, clashes


def _first_step(
    call: Call,
    snap: Snapshot,
    owner: dict[EntityKey, EntityKey],
    holders: dict[EntityKey, EntityKey],
) -> Delivery:
    """Plan calls are keyed by the target's ids: turn each into a step for its entity."""
    remote_key = call.key
    if call.op is Op.DELETE:
        holder = holders.get(remote_key)
        if holder is None:  # no entity of ours: a record the target has extra
            return Delivery(call, Action.DELETE, remote_id=remote_key.pk, foreign=True)
        entity_call = Call(Op.DELETE, holder, tuple(snap.events.get(holder, ())))
        return Delivery(entity_call, Action.DELETE, remote_id=remote_key.pk)
    key = owner[remote_key]
    entity_call = Call(call.op, key, tuple(snap.events.get(key, ())))
    record = snap.records[key]
    if call.op is Op.CREATE:
        return Delivery(entity_call, Action.POST, record={**record, "id": key.pk})
    return Delivery(entity_call, Action.PUT, remote_id=remote_key.pk, record=record)


def _settle_what_needs_no_call(
    snap: Snapshot,
    owner: dict[EntityKey, EntityKey],
    remote: dict[EntityKey, Record],
    called: set[EntityKey],
) -> None:
    """Entities the target already matches: their events are settled, their state recorded."""
    equal = [key for remote_key, key in owner.items() if key not in called and remote_key in remote]
    stale = [
        outcomes.delivered_state(key, snap.records[key])
        for key in equal
        if snap.states.get(key) != Known(snap.records[key]["id"], record_hash(snap.records[key]))
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
    post_ids = _post_remote_ids(snap.post_of[s.entity] for s in comments)
    current = []
    for step in steps:
        post_pk = snap.post_of.get(step.entity)
        if step in comments and post_pk in post_ids:
            record = {**step.record, "postId": post_ids[post_pk]}
            step = Delivery(step.call, step.action, step.remote_id, record)
        current.append(step)
    return current


def _post_remote_ids(post_pks: Iterable[int]) -> dict[int, int]:
    return dict(
        EntitySyncState.objects.filter(
            entity_table=TABLES[Kind.POST], entity_pk__in=set(post_pks), remote_id__isnull=False
        ).values_list("entity_pk", "remote_id")
    )
