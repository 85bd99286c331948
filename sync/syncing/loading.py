"""Database reads of a run: pending events, what the target holds, rows and their records.

Reads only. Every read is a bounded number of queries per batch, never one per object.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Max

from sync.models import EntitySyncState, ModelEvent
from sync.planner import EntityKey, Event, EventType, Kind, Presence
from sync.target import KINDS, MODELS, TABLES, holds, to_record

Record = dict[str, Any]


@dataclass(frozen=True)
class Facts:
    """What an entity's sync state says, as far as planning needs it."""

    remote_id: int | None
    unconfirmed: bool
    remote_parent_id: int | None
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
    "remote_parent_id",
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
    """The rows, states and post ids on the target of one batch of one kind."""

    kind: Kind
    rows: dict[int, Any]
    states: dict[int, EntitySyncState]
    post_remote_ids: dict[int, int]

    def record(self, pk: int, remote_id: int) -> Record | None:
        """The record the target should hold for row `pk`; None when the row is gone."""
        obj = self.rows.get(pk)
        if obj is None:
            return None
        if self.kind is Kind.POST:
            return to_record(obj, remote_id=remote_id)
        return to_record(
            obj, remote_id=remote_id, post_remote_id=self.post_remote_ids.get(obj.post_id)
        )


def load_batch(kind: Kind, pks: list[int], *, rows: bool) -> Batch:
    """Three queries at most: the states, the rows, and the remote ids of the comments' posts."""
    states = {
        s.entity_pk: s
        for s in EntitySyncState.objects.filter(entity_table=TABLES[kind], entity_pk__in=pks)
    }
    objects: dict[int, Any] = MODELS[kind].objects.in_bulk(pks) if rows else {}
    post_remote_ids: dict[int, int] = {}
    if kind is Kind.COMMENT and objects:
        post_remote_ids = dict(
            EntitySyncState.objects.filter(
                entity_table=TABLES[Kind.POST],
                entity_pk__in={obj.post_id for obj in objects.values()},
                remote_id__isnull=False,
            ).values_list("entity_pk", "remote_id")
        )
    return Batch(kind, objects, states, post_remote_ids)


def claimed_records(
    kind: Kind, records: Iterable[Mapping[str, Any]], *, besides: Iterable[int]
) -> set[tuple[Kind, int]]:
    """The records that entities other than `besides` hold, or may hold.

    Held: mapped to another entity. May hold: the record has the id of another entity whose own
    create is unconfirmed, and that entity's unconfirmed record's content (a target that keeps
    the ids it is sent would have created exactly that).
    """
    by_id = {r["id"]: r for r in records if isinstance(r.get("id"), int)}
    if not by_id:
        return set()
    besides = list(besides)
    states = EntitySyncState.objects.filter(entity_table=TABLES[kind]).exclude(
        entity_pk__in=besides
    )
    claimed = {
        (kind, remote_id)
        for remote_id in states.filter(remote_id__in=list(by_id)).values_list(
            "remote_id", flat=True
        )
    }
    unconfirmed = states.filter(
        entity_pk__in=list(by_id), create_unconfirmed=True, remote_id__isnull=True
    ).values_list("entity_pk", "unconfirmed_record")
    for pk, sent in unconfirmed:
        if sent and holds(by_id[pk], sent):
            claimed.add((kind, pk))
    return claimed
