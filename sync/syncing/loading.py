"""Database reads of a run: pending events, what the target holds, rows and their records.

Reads only. Every read is a bounded number of queries per batch, never one per object.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Max

from sync.matching import key_of
from sync.models import EntitySyncState, ModelEvent, SyncRun, SyncTarget
from sync.planner import EntityKey, Event, EventType, Kind, Presence
from sync.target import KINDS, MODELS, TABLES, Record, RemoteId, holds, remote_key, to_record


@dataclass(frozen=True)
class Facts:
    """What an entity's sync state says, as far as planning needs it."""

    remote_id: RemoteId | None
    unconfirmed: bool
    remote_parent_key: str | None
    parked_at: datetime | None
    parked_event_id: int | None
    delivered_hash: str = ""

    @property
    def presence(self) -> Presence | None:
        if self.remote_id is not None:
            return Presence.PRESENT
        if self.unconfirmed:
            return Presence.UNCONFIRMED
        return None  # nothing known: the events tell


FACT_FIELDS = (
    "entity_table",
    "entity_pk",
    "remote_id",
    "create_unconfirmed",
    "remote_parent_key",
    "parked_at",
    "parked_event_id",
    "delivered_hash",
)


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


def facts_of(keys: Iterable[EntityKey]) -> dict[EntityKey, Facts]:
    """The sync state of these entities: one query per kind and 5,000 entities."""
    by_kind: dict[Kind, list[int]] = {}
    for key in keys:
        by_kind.setdefault(key.kind, []).append(key.pk)
    facts: dict[EntityKey, Facts] = {}
    for kind, pks in by_kind.items():
        for start in range(0, len(pks), 5000):
            rows = EntitySyncState.objects.filter(
                entity_table=TABLES[kind], entity_pk__in=pks[start : start + 5000]
            ).values_list(*FACT_FIELDS)
            for _table, pk, *values in rows:
                facts[EntityKey(kind, pk)] = Facts(*values)
    return facts


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
    """The rows, states and post ids on the target of one batch of one kind, and until when
    the unconfirmed creates among them may still land (time.time())."""

    kind: Kind
    rows: dict[int, Any]
    states: dict[int, EntitySyncState]
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
    states = {
        s.entity_pk: s
        for s in EntitySyncState.objects.filter(entity_table=TABLES[kind], entity_pk__in=pks)
    }
    objects: dict[int, Any] = MODELS[kind].objects.in_bulk(pks) if rows else {}
    post_remote_ids: dict[int, RemoteId] = {}
    if kind is Kind.COMMENT and objects:
        post_remote_ids = post_remote_ids_of({obj.post_id for obj in objects.values()})
    may_land_until = landing_deadlines(states.values(), settle_time=settle_time)
    return Batch(kind, objects, states, post_remote_ids, may_land_until)


def post_remote_ids_of(post_pks: Iterable[int]) -> dict[int, RemoteId]:
    """Each post's id on the target, where it has one (one query)."""
    return dict(
        EntitySyncState.objects.filter(
            entity_table=TABLES[Kind.POST], entity_pk__in=set(post_pks), remote_key__isnull=False
        ).values_list("entity_pk", "remote_id")
    )


def landing_deadlines(states: Iterable[EntitySyncState], *, settle_time: float) -> dict[int, float]:
    """For each unconfirmed create, the moment (time.time()) after which its POST can no longer
    land: the end of the run that sent it, plus `settle_time`. A run that is gone from the
    history ended long ago."""
    by_run: dict[int, list[int]] = {}
    for state in states:
        if state.create_unconfirmed and state.unconfirmed_run is not None:
            by_run.setdefault(state.unconfirmed_run, []).append(state.entity_pk)
    if not by_run:
        return {}
    ended = dict(SyncRun.objects.filter(pk__in=by_run).values_list("pk", "finished_at"))
    deadlines: dict[int, float] = {}
    for run_id, pks in by_run.items():
        if run_id not in ended:
            until = 0.0  # pruned from the history: it ended long ago
        elif ended[run_id] is None:
            until = float("inf")  # this very run
        else:
            until = ended[run_id].timestamp() + settle_time
        for pk in pks:
            deadlines[pk] = until
    return deadlines


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


def unfinished_runs(*, besides: int | None) -> list[int]:
    """Runs recorded as running, other than `besides`: their process ended without finishing
    them (read while holding the run lock)."""
    running = SyncRun.objects.filter(status=SyncRun.Status.RUNNING)
    if besides is not None:
        running = running.exclude(pk=besides)
    return list(running.values_list("pk", flat=True))


def _is_pk(key: str) -> bool:
    return key.isdigit() and len(key) < 19 and not key.startswith("0")
