"""Looking after the change log: what is pending or failing, and pruning what is only history."""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Count, F, Min, Q
from django.utils import timezone

from sync.models import EntitySyncState, ModelEvent, SyncRun, SyncTarget
from sync.notifications import notify_followers
from sync.planner import EntityKey
from sync.target import KINDS, TABLES


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


def retry_parked(*, entities: Iterable[EntityKey] | None = None) -> list[EntityKey]:
    """Un-park every parked entity, or those of `entities`: the next run sends them again.

    Their failed-run count starts again from 0; the followers are woken. Returns the entities
    un-parked (an entity that is not parked is left alone).
    """
    parked = EntitySyncState.objects.filter(parked_at__isnull=False)
    if entities is not None:
        wanted = Q(pk__in=[])
        for key in entities:
            wanted |= Q(entity_table=TABLES[key.kind], entity_pk=key.pk)
        parked = parked.filter(wanted)
    with transaction.atomic():
        rows = list(
            parked.select_for_update()
            .order_by("entity_table", "entity_pk")
            .values_list("pk", "entity_table", "entity_pk")
        )
        EntitySyncState.objects.filter(pk__in=[pk for pk, _, _ in rows]).update(
            parked_at=None, parked_event_id=None, attempts=0, updated_at=timezone.now()
        )
        if rows:
            notify_followers()
    return [EntityKey(KINDS[table], pk) for _, table, pk in rows if table in KINDS]
