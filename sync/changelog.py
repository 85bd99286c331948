"""Looking after the change log: what is pending or failing, operators' decisions about failing
entities, and pruning what is only history."""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Count, F, Min, Q
from django.utils import timezone

from sync.models import EntitySyncState, ModelEvent, SyncDecision, SyncRun, SyncTarget
from sync.notifications import notify_followers
from sync.planner import EntityKey, Kind
from sync.target import KINDS, TABLES

# The entities a decision lists by name (it counts them all).
DECISION_LISTED = 50


@dataclass(frozen=True)
class PendingGroup:
    """Pending events of one table and type."""

    entity_table: str
    type: str
    count: int
    oldest_logged_at: datetime
    oldest_age: timedelta


def pending_summary(*, now: datetime | None = None) -> list[PendingGroup]:
    """Pending events per table and type, with the age of the oldest, sorted by table and type."""
    now = now or timezone.now()
    rows = (
        ModelEvent.objects.pending()
        .order_by()
        .values("entity_table", "type")
        .annotate(count=Count("id"), oldest=Min("logged_at"))
        .order_by("entity_table", "type")
    )
    return [
        PendingGroup(
            entity_table=row["entity_table"],
            type=row["type"],
            count=row["count"],
            oldest_logged_at=row["oldest"],
            oldest_age=max(now - row["oldest"], timedelta(0)),
        )
        for row in rows
    ]


def prune_events(*, older_than: timedelta, now: datetime | None = None) -> int:
    """Delete synced events logged more than `older_than` ago; pending events are never touched.

    The age is counted from `logged_at`, so the retention reads "keep N days of changes".
    Returns how many events were deleted.
    """
    if older_than < timedelta(0):
        raise ValueError(f"older_than must not be negative, got {older_than}")
    cutoff = (now or timezone.now()) - older_than
    deleted, _ = ModelEvent.objects.synced().filter(logged_at__lt=cutoff).delete()
    return deleted


def prune_runs(*, older_than: timedelta, now: datetime | None = None) -> int:
    """Delete sync runs started more than `older_than` ago, except the newest run of all, so
    that sync_status can always say when the last one was. Returns how many were deleted."""
    if older_than < timedelta(0):
        raise ValueError(f"older_than must not be negative, got {older_than}")
    cutoff = (now or timezone.now()) - older_than
    newest = SyncRun.objects.order_by("-started_at", "-id").values_list("pk", flat=True).first()
    deleted, _ = SyncRun.objects.filter(started_at__lt=cutoff).exclude(pk=newest).delete()
    return deleted


@dataclass(frozen=True)
class Pruned:
    events: int
    runs: int


def prune_history(
    *, events_older_than: timedelta, runs_older_than: timedelta, now: datetime | None = None
) -> Pruned:
    """Delete what is only history: synced events and old sync runs, in one transaction."""
    now = now or timezone.now()
    with transaction.atomic():
        return Pruned(
            events=prune_events(older_than=events_older_than, now=now),
            runs=prune_runs(older_than=runs_older_than, now=now),
        )


def recent_runs(*, limit: int = 5) -> list[SyncRun]:
    """The newest sync runs, newest first."""
    return list(SyncRun.objects.order_by("-started_at", "-id")[:limit])


def current_target() -> SyncTarget | None:
    """The target the sync state describes, once an import or a run has named one."""
    return SyncTarget.objects.order_by("pk").first()


def failed_entities(*, limit: int = 50) -> tuple[list[EntitySyncState], int]:
    """Entities whose last call failed (parked ones first), and how many there are in all."""
    failing = EntitySyncState.objects.exclude(last_error="")
    rows = list(failing.order_by(F("parked_at").desc(nulls_last=True), "-last_failed_at")[:limit])
    return rows, failing.count()


@dataclass(frozen=True)
class ParkedFilter:
    """Which parked entities an operator means: of a kind, whose last failure had an HTTP
    status (0: no answer), parked longer ago than an age, or named one by one."""

    kind: Kind | None = None
    status: int | None = None
    older_than: timedelta | None = None
    entities: tuple[EntityKey, ...] | None = None

    def apply(self, states, *, now: datetime):
        if self.kind is not None:
            states = states.filter(entity_table=TABLES[self.kind])
        if self.status == 0:
            states = states.filter(last_status__isnull=True)
        elif self.status is not None:
            states = states.filter(last_status=self.status)
        if self.older_than is not None:
            states = states.filter(parked_at__lt=now - self.older_than)
        if self.entities is not None:
            wanted = Q(pk__in=[])
            for key in self.entities:
                wanted |= Q(entity_table=TABLES[key.kind], entity_pk=key.pk)
            states = states.filter(wanted)
        return states

    def as_dict(self) -> dict:
        described: dict = {}
        if self.kind is not None:
            described["kind"] = self.kind.value
        if self.status is not None:
            described["status"] = self.status
        if self.older_than is not None:
            described["older_than_seconds"] = self.older_than.total_seconds()
        if self.entities is not None:
            described["entities"] = [f"{k.kind.value}:{k.pk}" for k in self.entities]
        return described


@dataclass(frozen=True)
class FailureGroup:
    """Failing entities of one kind that failed alike: the same HTTP status (None: no answer)
    and the same error class."""

    kind: Kind
    status: int | None
    error_class: str
    failing: int
    parked: int
    oldest_failed_at: datetime | None

    def oldest_age(self, now: datetime) -> timedelta:
        return now - self.oldest_failed_at if self.oldest_failed_at else timedelta(0)


def failure_groups() -> list[FailureGroup]:
    """Failing and parked entities grouped by kind and error, the largest groups first."""
    rows = (
        EntitySyncState.objects.exclude(last_error="")
        .filter(entity_table__in=KINDS)
        .values("entity_table", "last_status", "error_class")
        .annotate(
            failing=Count("id"),
            parked=Count("id", filter=Q(parked_at__isnull=False)),
            oldest=Min("last_failed_at"),
        )
        .order_by("-failing", "entity_table", "error_class")
    )
    return [
        FailureGroup(
            KINDS[row["entity_table"]],
            row["last_status"],
            row["error_class"],
            row["failing"],
            row["parked"],
            row["oldest"],
        )
        for row in rows
    ]


def retry_parked(
    *,
    entities: Iterable[EntityKey] | None = None,
    filters: ParkedFilter | None = None,
    actor: str = "",
) -> list[EntityKey]:
    """Un-park the parked entities the filters name (every one by default): the next run sends
    them again.

    Their failed-run count starts again from 0; the followers are woken; the decision is kept
    (`SyncDecision`). Returns the entities un-parked (one that is not parked is left alone).
    """
    if entities is not None:
        filters = ParkedFilter(**{**_fields(filters), "entities": tuple(entities)})
    filters = filters or ParkedFilter()
    now = timezone.now()
    with transaction.atomic():
        keys, pks = _parked(filters, now=now)
        EntitySyncState.objects.filter(pk__in=pks).update(
            parked_at=None, parked_event_id=None, attempts=0, updated_at=now
        )
        if keys:
            _decided(SyncDecision.Action.RETRY, keys, filters, actor=actor, now=now)
            notify_followers()
    return keys


def discard_parked(*, filters: ParkedFilter, actor: str) -> list[EntityKey]:
    """The target keeps what it has for the parked entities the filters name: their pending
    events are settled without a call, their failures forgotten (they leave the failing lists
    and the metrics), and the decision is kept. A later change of one is sent as usual."""
    now = timezone.now()
    with transaction.atomic():
        keys, pks = _parked(filters, now=now)
        for table in {TABLES[key.kind] for key in keys}:
            ModelEvent.objects.pending().filter(
                entity_table=table,
                entity_pk__in=[key.pk for key in keys if TABLES[key.kind] == table],
            ).update(synced_at=now)
        EntitySyncState.objects.filter(pk__in=pks).update(
            parked_at=None,
            parked_event_id=None,
            attempts=0,
            last_error="",
            last_status=None,
            error_class="",
            last_failed_at=None,
            updated_at=now,
        )
        if keys:
            _decided(SyncDecision.Action.DISCARD, keys, filters, actor=actor, now=now)
    return keys


def recent_decisions(*, limit: int = 5) -> list[SyncDecision]:
    return list(SyncDecision.objects.order_by("-decided_at", "-id")[:limit])


def _parked(filters: ParkedFilter, *, now: datetime) -> tuple[list[EntityKey], list[int]]:
    parked = filters.apply(EntitySyncState.objects.filter(parked_at__isnull=False), now=now)
    rows = list(
        parked.select_for_update()
        .order_by("entity_table", "entity_pk")
        .values_list("pk", "entity_table", "entity_pk")
    )
    keys = [EntityKey(KINDS[table], pk) for _, table, pk in rows if table in KINDS]
    return keys, [pk for pk, _, _ in rows]


def _decided(action: str, keys: list[EntityKey], filters: ParkedFilter, *, actor: str, now):
    SyncDecision.objects.create(
        action=action,
        actor=actor or "unknown",
        decided_at=now,
        count=len(keys),
        filters=filters.as_dict(),
        entities=[f"{key.kind.value}:{key.pk}" for key in keys[:DECISION_LISTED]],
    )


def _fields(filters: ParkedFilter | None) -> dict:
    if filters is None:
        return {}
    return {"kind": filters.kind, "status": filters.status, "older_than": filters.older_than}
