"""Database reads of a run: pending events, sync states, rows and their records, the records
other entities claim, the target and the runs before this one.

Reads only. Every read is a bounded number of queries per batch, never one per object.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction
from django.db.models import Max

from sync.ids import key_of
from sync.models import EntitySyncState, ModelEvent, SyncRun, SyncTarget
from sync.planner import EntityKey, Event, EventType, Kind
from sync.syncing.deliveries import Outcome, Snapshot, SyncState
from sync.target import (
    FIELDS,
    KINDS,
    MODELS,
    POST_OF_COMMENT,
    TABLES,
    Record,
    RemoteId,
    holds,
    record_hash,
    record_of,
    remote_key,
    to_record,
)

# The columns of a sync state a run reads, in SyncState's order.
STATE_FIELDS = (
    "remote_id",
    "delivered_hash",
    "acknowledged_hash",
    "remote_parent_key",
    "create_unconfirmed",
    "unconfirmed_record",
    "unconfirmed_run",
    "parked_at",
    "parked_event_id",
)
# Rows and states read at a time.
CHUNK = 5000


def pending_horizon() -> int:
    """The newest pending event now: a run settles nothing logged after it started."""
    return ModelEvent.objects.pending().aggregate(horizon=Max("id"))["horizon"] or 0


def pending_events(horizon: int) -> list[Event]:
    return [
        Event(event_id, EntityKey(KINDS[table], pk), EventType(kind))
        for event_id, table, pk, kind in ModelEvent.objects.pending()
        .filter(id__lte=horizon, entity_table__in=KINDS)
        .order_by("id")
        .values_list("id", "entity_table", "entity_pk", "type")
        .iterator(chunk_size=5000)
    ]


def states_of(keys: Iterable[EntityKey]) -> dict[EntityKey, SyncState]:
    """The sync states of these entities: one query per kind and 5,000 entities."""
    by_kind: dict[Kind, list[int]] = {}
    for key in keys:
        by_kind.setdefault(key.kind, []).append(key.pk)
    states: dict[EntityKey, SyncState] = {}
    for kind, pks in by_kind.items():
        for start in range(0, len(pks), 5000):
            rows = EntitySyncState.objects.filter(
                entity_table=TABLES[kind], entity_pk__in=pks[start : start + 5000]
            ).values_list("entity_pk", *STATE_FIELDS)
            for pk, *values in rows:
                states[EntityKey(kind, pk)] = SyncState(*values)
    return states


@contextmanager
def snapshot() -> Iterator[None]:
    """One view of the database for every read inside (a REPEATABLE READ transaction on
    PostgreSQL): a full run reads its snapshot, then the target, then what the target showed
    it needs in full, all as of one moment."""
    # Only a transaction of its own can be made REPEATABLE READ (not one nested in another).
    own_transaction = not connection.in_atomic_block
    with transaction.atomic():
        if connection.vendor == "postgresql" and own_transaction:
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        yield


def read_snapshot() -> Snapshot:
    """Inside `snapshot()`: the pending events, every sync state and every row's record, read in
    chunks. An entity with no pending event whose state says the target holds it as it is (the
    hash last delivered is its record's) is kept as that hash alone (`Snapshot.delivered`)."""
    snap = Snapshot()
    pending = ModelEvent.objects.pending().filter(entity_table__in=KINDS).order_by("id")
    for event_id, table, pk in pending.values_list("id", "entity_table", "entity_pk").iterator(
        chunk_size=CHUNK
    ):
        snap.events.setdefault(EntityKey(KINDS[table], pk), []).append(event_id)
    for kind in Kind:
        for pk, state, values in _rows_and_states(kind):
            _take(snap, EntityKey(kind, pk), state, values)
    return snap


def load_entities(snap: Snapshot, keys: Iterable[EntityKey]) -> None:
    """Inside the `snapshot()` of `snap`: these entities' sync states and records in full."""
    by_kind: dict[Kind, list[int]] = {}
    for key in keys:
        by_kind.setdefault(key.kind, []).append(key.pk)
    for kind in Kind:
        pks = sorted(by_kind.get(kind, ()))
        for start in range(0, len(pks), CHUNK):
            chunk = pks[start : start + CHUNK]
            states = {
                pk: SyncState(*values)
                for pk, *values in EntitySyncState.objects.filter(
                    entity_table=TABLES[kind], entity_pk__in=chunk
                ).values_list("entity_pk", *STATE_FIELDS)
            }
            rows = {
                values[0]: values
                for values in MODELS[kind]
                .objects.filter(pk__in=chunk)
                .values_list(*FIELDS[kind].values())
            }
            for pk in chunk:
                _take(snap, EntityKey(kind, pk), states.get(pk), rows.get(pk), whole=True)


def _take(
    snap: Snapshot,
    key: EntityKey,
    state: SyncState | None,
    values: tuple | None,
    *,
    whole: bool = False,
) -> None:
    """One entity into the snapshot: as its delivered hash alone where that says all (unless
    `whole`), else its state and record."""
    remote_id = key.pk if state is None or state.remote_id is None else state.remote_id
    if key.kind is Kind.POST and (type(remote_id) is not int or remote_id != key.pk):
        snap.post_ids[key.pk] = remote_id
    record = None
    post_pk = None
    if values is not None:
        post_remote_id = None
        if key.kind is Kind.COMMENT:
            post_pk = values[POST_OF_COMMENT]
            post_remote_id = snap.post_ids.get(post_pk, post_pk)
        record = record_of(key.kind, values, remote_id=remote_id, post_remote_id=post_remote_id)
    if (
        not whole
        and record is not None
        and state is not None
        and state.remote_id is not None
        and not state.unconfirmed
        and not state.acknowledged_hash
        and key not in snap.events
        and state.delivered_hash == record_hash(record)
        and snap.delivered.add(key.kind, remote_key(state.remote_id), key.pk, state.delivered_hash)
    ):
        return
    if state is not None:
        snap.states[key] = state
    if record is not None:
        snap.records[key] = record
        if post_pk is not None:
            snap.post_of[key] = post_pk


def _rows_and_states(kind: Kind) -> Iterator[tuple[int, SyncState | None, tuple | None]]:
    """Every row and sync state of a kind, by pk, read side by side in chunks."""
    states = (
        EntitySyncState.objects.filter(entity_table=TABLES[kind])
        .order_by("entity_pk")
        .values_list("entity_pk", *STATE_FIELDS)
        .iterator(chunk_size=CHUNK)
    )
    rows = (
        MODELS[kind]
        .objects.order_by("pk")
        .values_list(*FIELDS[kind].values())
        .iterator(chunk_size=CHUNK)
    )
    state, row = next(states, None), next(rows, None)
    while state is not None or row is not None:
        if state is not None and (row is None or state[0] < row[0]):
            yield state[0], SyncState(*state[1:]), None
            state = next(states, None)
        elif row is not None and (state is None or row[0] < state[0]):
            yield row[0], None, row
            row = next(rows, None)
        elif state is not None and row is not None:
            yield row[0], SyncState(*state[1:]), row
            state, row = next(states, None), next(rows, None)


def snapshot_remote_id(snap: Snapshot, key: EntityKey) -> RemoteId:
    known = snap.states.get(key)
    return key.pk if known is None or known.remote_id is None else known.remote_id


def pending_event_ids(kind: Kind, pks: Iterable[int]) -> dict[int, list[int]]:
    """Every pending event of these entities, in id order (one query)."""
    found: dict[int, list[int]] = {}
    rows = (
        ModelEvent.objects.pending()
        .filter(entity_table=TABLES[kind], entity_pk__in=list(pks))
        .order_by("id")
        .values_list("entity_pk", "id")
    )
    for pk, event_id in rows:
        found.setdefault(pk, []).append(event_id)
    return found


@dataclass
class Batch:
    """The rows, sync states and post ids on the target of one batch of one kind, and until when
    the unconfirmed creates among them may still land (time.monotonic())."""

    kind: Kind
    rows: dict[int, Any]
    states: dict[int, SyncState]
    post_remote_ids: dict[int, RemoteId]
    may_land_until: dict[int, float]

    def record(self, pk: int, remote_id: RemoteId) -> Record | None:
        """The record the target should hold for row `pk`; None when the row is gone."""
        obj = self.rows.get(pk)
        if obj is None:
            return None
        if self.kind is Kind.POST:
            return to_record(obj, remote_id=remote_id)
        return to_record(
            obj, remote_id=remote_id, post_remote_id=self.post_remote_ids.get(obj.post_id)
        )


def load_batch(kind: Kind, pks: list[int], *, rows: bool, settle_time: float = 0.0) -> Batch:
    """Four queries at most: the states, the rows, the remote ids of the comments' posts, and
    when the runs that sent unconfirmed creates ended (plus `settle_time`)."""
    states = {key.pk: state for key, state in states_of(EntityKey(kind, pk) for pk in pks).items()}
    objects: dict[int, Any] = MODELS[kind].objects.in_bulk(pks) if rows else {}
    post_remote_ids: dict[int, RemoteId] = {}
    if kind is Kind.COMMENT and objects:
        post_remote_ids = post_remote_ids_of({obj.post_id for obj in objects.values()})
    may_land_until = landing_deadlines(states, settle_time=settle_time)
    return Batch(kind, objects, states, post_remote_ids, may_land_until)


def posts_of(comment_pks: Iterable[int]) -> dict[EntityKey, EntityKey]:
    """Each comment's post, as the database links them now (chunked queries; a comment gone
    is left out)."""
    posts: dict[EntityKey, EntityKey] = {}
    pks = list(comment_pks)
    for start in range(0, len(pks), CHUNK):
        rows = MODELS[Kind.COMMENT].objects.filter(pk__in=pks[start : start + CHUNK])
        for pk, post_pk in rows.values_list("pk", "post_id"):
            posts[EntityKey(Kind.COMMENT, pk)] = EntityKey(Kind.POST, post_pk)
    return posts


def post_remote_ids_of(post_pks: Iterable[int]) -> dict[int, RemoteId]:
    """Each post's id on the target, where it has one (one query)."""
    return dict(
        EntitySyncState.objects.filter(
            entity_table=TABLES[Kind.POST], entity_pk__in=set(post_pks), remote_key__isnull=False
        ).values_list("entity_pk", "remote_id")
    )


def landing_deadlines(states: Mapping[int, SyncState], *, settle_time: float) -> dict[int, float]:
    """For each unconfirmed create (by pk), the moment (time.monotonic()) after which its POST
    can no longer land: the end of the run that sent it, plus that run's timeout or
    `settle_time` (this run's), whichever is longer. A run gone from the history ended long ago
    (0); one not ended yet is this very run (never)."""
    by_run: dict[int, list[int]] = {}
    for pk, state in states.items():
        if state.unconfirmed and state.unconfirmed_run is not None:
            by_run.setdefault(state.unconfirmed_run, []).append(pk)
    if not by_run:
        return {}
    runs = list(SyncRun.objects.filter(pk__in=by_run).values_list("pk", "finished_at", "timeout"))
    ended = {pk: finished for pk, finished, _ in runs}
    waited = {pk: timeout or 0.0 for pk, _, timeout in runs}
    deadlines: dict[int, float] = {}
    offset = time.monotonic() - time.time()
    for run_id, pks in by_run.items():
        if run_id not in ended:
            until = 0.0
        elif ended[run_id] is None:
            until = float("inf")
        else:
            until = ended[run_id].timestamp() + max(settle_time, waited[run_id]) + offset
        for pk in pks:
            deadlines[pk] = until
    return deadlines


def claimed_for(found: Iterable[Outcome]) -> set[tuple[Kind, str]]:
    """The records these lookups found that entities other than theirs hold or may hold."""
    claimed: set[tuple[Kind, str]] = set()
    for kind in Kind:
        of_kind = [o for o in found if o.delivery.entity.kind is kind]
        if of_kind:
            records = [r for o in of_kind for r in (*o.candidates, *o.close_candidates)]
            besides = [o.delivery.entity.pk for o in of_kind]
            claimed |= claimed_records(kind, records, besides=besides)
    return claimed


def claimed_records(
    kind: Kind, records: Iterable[Mapping[str, Any]], *, besides: Iterable[int]
) -> set[tuple[Kind, str]]:
    """The records that entities other than `besides` hold, or may hold (by remote key).

    Held: mapped to another entity. May hold: the record has the id of another entity whose own
    create is unconfirmed, and that entity's unconfirmed record's content (a target that keeps
    the ids it is sent would have created exactly that).
    """
    by_key = {ident: r for r in records if (ident := key_of(r)) is not None}
    if not by_key:
        return set()
    besides = list(besides)
    states = EntitySyncState.objects.filter(entity_table=TABLES[kind]).exclude(
        entity_pk__in=besides
    )
    claimed = {
        (kind, key)
        for key in states.filter(remote_key__in=list(by_key)).values_list("remote_key", flat=True)
    }
    own_ids = {int(key): key for key in by_key if _is_pk(key)}
    if not own_ids:
        return claimed
    unconfirmed = states.filter(
        entity_pk__in=list(own_ids), create_unconfirmed=True, remote_key__isnull=True
    ).values_list("entity_pk", "unconfirmed_record")
    for pk, sent in unconfirmed:
        if sent and holds(by_key[own_ids[pk]], sent):
            claimed.add((kind, remote_key(pk)))
    return claimed


def the_target() -> SyncTarget | None:
    """The target the sync state describes, if one was adopted."""
    return SyncTarget.objects.order_by("pk").first()


def unfinished_runs() -> list[int]:
    """Runs recorded as running: read while holding the run lock, before this run starts, their
    process ended without finishing them."""
    running = SyncRun.objects.filter(status=SyncRun.Status.RUNNING)
    return list(running.values_list("pk", flat=True))


def _is_pk(key: str) -> bool:
    return key.isdigit() and len(key) < 19 and not key.startswith("0")
