"""A full run: make the target's records equal to the database's rows, whatever drifted.

The rows, the sync states and the pending events are read from one snapshot (on PostgreSQL a
REPEATABLE READ transaction), so the events it settles are exactly those whose effect the rows
it sends show. A change committed after the snapshot stays pending for the next run. Creates are
flagged before they are sent, as in an incremental run, so a killed full run is safe too.

The target's records are keyed by the text of their ids (`remote_key`), whatever their type. An
entity's events are settled only where the target is seen to hold its state already, or in the
transaction that records its delivered call; an entity whose create may have landed unanswered
is looked for by its content, as in an incremental run, and never settled beforehand.

It stays lean over a million records: the target's lists are read as they arrive, and an entity
whose sync state says the target holds it as last delivered is kept as that hash alone; the
records of the target that match it are dropped as they are read, and only the entities the
target lacks or holds otherwise are loaded in full, in the same snapshot.

The run drives it as it drives the incremental source: `plan` (reads, and the target's lists),
`prepare` (settles what the target already holds), `first_steps`. It never calls the run back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from sync.client import TargetApiClient
from sync.errors import FullRunRefused
from sync.ids import key_of
from sync.planner import Call, EntityKey, Kind, Op, Plan, plan_full, sort_calls
from sync.syncing import diffing, loading, outcomes
from sync.syncing.deliveries import (
    Action,
    Delivered,
    Delivery,
    Outcome,
    Result,
    Snapshot,
    Steps,
    TargetTraits,
)
from sync.syncing.report import FailedEntity, PlannedCall, SyncOptions
from sync.target import (
    Record,
    our_fields,
    readable_id,
    record_hash,
    remote_key,
    with_post,
)

# Records the refusal of a full run lists, of those it would delete.
REFUSAL_LISTED = 20


class FullSource:
    """The whole target against a snapshot of the database, as calls."""

    def __init__(
        self,
        *,
        client: TargetApiClient,
        options: SyncOptions,
        traits: TargetTraits,
        settle_time: float,
        on_read: Callable[[], None] = lambda: None,
    ) -> None:
        self.client = client
        # Called once the target's lists are read and the plan goes ahead, before any call.
        self.on_read = on_read
        self.options = options
        self.traits = traits
        self.settle_time = settle_time
        self.events_pending = 0
        self.planned: tuple[PlannedCall, ...] = ()
        self.unchanged = 0  # the diff leaves out what the target holds already
        self.notices: list[str] = []
        self.skipped: list[FailedEntity] = []
        self._snap = Snapshot()
        self._steps: dict[Call, Delivery] = {}
        self._settle: tuple[diffing.Diff, dict, set[EntityKey]] | None = None
        self._differ: dict[Kind, dict[str, tuple[int, Record]]] = {}

    def plan(self, *, dry_run: bool) -> Plan:
        """Read the snapshot and the target's lists, and diff them. More records to delete than
        the options allow: a dry run says so; any other run is refused here, before a write."""
        with loading.snapshot():
            snap = self._snap = loading.read_snapshot()
            remote = {kind: self._read_target(kind, snap) for kind in Kind}
            loading.load_entities(snap, self._differing(snap, remote))
        self.events_pending = sum(len(ids) for ids in snap.events.values())
        diff = diffing.diff(snap, remote, self.traits)
        snap.delivered = Delivered()  # the entities it held need nothing of this run
        remote_by_key = {
            (kind, key): record
            for kind, records in remote.items()
            for record in records
            if (key := key_of(record)) is not None
        }
        plan = plan_full(*self._sides(diff, remote_by_key))
        until = loading.landing_deadlines(
            {key.pk: snap.states[key] for key in diff.lookups}, settle_time=self.settle_time
        )
        steps = [_step(call, snap) for call in plan.calls]
        steps += [_lookup_step(key, snap, until.get(key.pk, 0.0)) for key in diff.lookups]
        # A row whose own id another entity holds on the target is not there yet: create it.
        steps += [
            _create_step(Call(Op.CREATE, key, tuple(snap.events.get(key, ()))), snap)
            for key in sorted(diff.clashes)
        ]
        foreign = _foreign_steps(diff)
        steps += foreign
        self.planned = tuple(
            PlannedCall(step.call, step.remote_id, foreign=step.foreign) for step in steps
        )
        if diff.unaddressable:
            self.notices.append(
                f"{diff.unaddressable} records of the target have no usable id; "
                "they were left alone"
            )
        cap = self.options.max_foreign_deletes
        if cap is not None and len(foreign) > cap:
            if not dry_run:
                raise FullRunRefused(_refusal(foreign, cap))
            self.notices.append(_refusal(foreign, cap))
        called = {step.entity for step in steps if not step.foreign}
        self._settle = (diff, remote_by_key, called)
        self._steps = {step.call: step for step in steps}
        self.on_read()
        return Plan(calls=sort_calls(self._steps))

    def _read_target(self, kind: Kind, snap: Snapshot) -> list[Record]:
        """The target's records of a kind, read as they arrive: a record under the key of an
        entity taken to be delivered as it is (`Snapshot.delivered`) is compared with the hash
        of that entity's record and dropped when it is equal; any other one is kept. Of records
        under one key the last is the one compared, as the plan compares it."""
        kept: list[Record] = []
        differing: dict[str, tuple[int, Record]] = {}
        self._differ[kind] = differing

        def take(record: Record) -> None:
            key = key_of(record)
            found = None if key is None else snap.delivered.seen(kind, key)
            if key is None or found is None:
                kept.append(record)
            elif int(record_hash(our_fields(kind, record)), 16) == found[1]:
                differing.pop(key, None)
            else:
                differing[key] = (found[0], record)

        self.client.each_record(kind.resource, take)
        return kept

    def _differing(self, snap: Snapshot, remote: dict[Kind, list[Record]]) -> list[EntityKey]:
        """The entities taken to be delivered whose record the target lacks or holds otherwise:
        out of `delivered`, their records (as the target holds them) into the lists, so the
        plan sees them whole."""
        keys: list[EntityKey] = []
        for kind in Kind:
            differing = self._differ.pop(kind, {})
            unseen = snap.delivered.unseen(kind)
            for key, pk in unseen:
                snap.delivered.remove(kind, key)
                keys.append(EntityKey(kind, pk))
            for key, (pk, record) in differing.items():
                snap.delivered.remove(kind, key)
                keys.append(EntityKey(kind, pk))
                remote[kind].append(record)
        return keys

    @property
    def awaiting(self) -> set[EntityKey]:
        """The entities whose changes wait for delivery (pending events in the snapshot)."""
        return set(self._snap.events)

    def prepare(self) -> Steps:
        assert self._settle is not None, "plan first"
        _settle_what_needs_no_call(self._snap, *self._settle)
        return Steps()

    def first_steps(self, calls: tuple[Call, ...]) -> Steps:
        return _with_current_posts([self._steps[c] for c in calls], self._snap)

    def _sides(
        self, diff: diffing.Diff, remote_by_key: dict[tuple[Kind, str], Record]
    ) -> tuple[dict[EntityKey, Record], dict[EntityKey, Record]]:
        """Ours and the target's record of each entity that holds a record or has a row; a
        record the target holds as we sent it (as it rewrites it) counts as equal."""
        snap = self._snap
        local: dict[EntityKey, Record] = {}
        theirs: dict[EntityKey, Record] = {}
        for slot, entity in diff.owner.items():
            record = remote_by_key.get(slot)
            if entity in snap.records:
                local[entity] = diffing.comparable(snap.records[entity])
            if record is None:
                continue
            theirs[entity] = diffing.comparable(our_fields(entity.kind, record))
            if entity in snap.records and diffing.holds_already(
                entity.kind,
                record,
                snap.records[entity],
                snap.states.get(entity),
                self.traits.rewrites(entity.kind),
            ):
                theirs[entity] = local[entity]
        return local, theirs


def _foreign_steps(diff: diffing.Diff) -> list[Delivery]:
    """DELETEs of the records no entity of ours holds. Each gets a key of its own: negative (no
    row has one), in the order of their ids."""
    # Comments' before posts', as they are sent.
    ordered = sorted(
        diff.foreign, key=lambda item: (item[0] is Kind.POST, diffing.id_order(item[1]))
    )
    return [
        Delivery(
            Call(Op.DELETE, EntityKey(kind, n - len(ordered))),
            Action.DELETE,
            remote_id=readable_id(record["id"]),
            foreign=True,
        )
        for n, (kind, record) in enumerate(ordered)
    ]


def _lookup_step(key: EntityKey, snap: Snapshot, may_land_until: float) -> Delivery:
    """An unconfirmed create: looked for by its content; found, it is made equal (or deleted, if
    its row is gone); not found, it is created (or nothing, if its row is gone)."""
    events = tuple(snap.events.get(key, ()))
    contents = diffing.contents_of(key, snap)
    if key not in snap.records:
        return Delivery(
            Call(Op.DELETE, key, events),
            Action.FIND,
            sought=contents,
            may_land_until=may_land_until,
        )
    record = {**snap.records[key], "id": key.pk}
    return Delivery(
        Call(Op.CREATE, key, events),
        Action.FIND,
        record=record,
        sought=contents,
        may_land_until=may_land_until,
    )


def _step(call: Call, snap: Snapshot) -> Delivery:
    """A planned call of an entity as its first step."""
    key = call.key
    entity_call = Call(call.op, key, tuple(snap.events.get(key, ())))
    remote_id = loading.snapshot_remote_id(snap, key)
    if call.op is Op.DELETE:
        return Delivery(entity_call, Action.DELETE, remote_id=remote_id)
    record = snap.records[key]
    if call.op is Op.CREATE:
        return _create_step(entity_call, snap)
    return Delivery(entity_call, Action.PUT, remote_id=remote_id, record=record)


def _create_step(call: Call, snap: Snapshot) -> Delivery:
    """A POST; its first one unless an earlier POST of it may have landed, so that, never sent,
    its create flag is lifted again."""
    known = snap.states.get(call.key)
    record = {**snap.records[call.key], "id": call.key.pk}
    first = known is None or not known.unconfirmed
    return Delivery(call, Action.POST, record=record, first_post=first)


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
    diff: diffing.Diff,
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
    outcomes.settle_without_call(
        stale, gone=gone, event_ids=[event_id for key in quiet for event_id in snap.events[key]]
    )


def _with_current_posts(steps: list[Delivery], snap: Snapshot) -> Steps:
    """Comments carry their post's id on the target as it is now (a post may be new); one whose
    post is not on the target (its create failed) is held back, not sent to fail."""
    comments = [s for s in steps if s.entity.kind is Kind.COMMENT and s.record is not None]
    if not comments:
        return Steps(to_send=steps)
    post_ids = loading.post_remote_ids_of(snap.post_of[s.entity] for s in comments)
    ready = Steps()
    for step in steps:
        post_pk = snap.post_of.get(step.entity)
        if step in comments and post_pk not in post_ids:
            error = f"held back: post {post_pk} is not on the target"
            ready.settled.append(Outcome(step, Result.FAILED, error=error, sent=False))
            continue
        if step in comments and step.record is not None and post_pk is not None:
            step = replace(step, record=with_post(step.record, post_ids[post_pk]))
        ready.to_send.append(step)
    return ready
