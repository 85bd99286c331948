"""The figures operators watch: how far behind the sync is, how its runs and calls went, what
fails, and how long changes took to reach the target.

Read from the database when asked, so every process (each web worker, each follower) gives the
same answer. Each figure is one query.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import (
    Count,
    DurationField,
    Exists,
    ExpressionWrapper,
    F,
    Min,
    OuterRef,
    Q,
    Sum,
)
from django.utils import timezone

from sync.models import EntitySyncState, ModelEvent, SyncRun, SyncTarget, SyncVerification
from sync.planner import EventType, Op
from sync.target import TABLES

# Upper bounds of the commit-to-delivered lag histogram, in seconds.
LAG_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0)


@dataclass(frozen=True)
class Health:
    """Whether the sync keeps up: the oldest event waiting for delivery, against a limit.

    Events of parked entities are left out: they wait for an operator, not for the sync, and
    `parked` counts those entities.
    """

    pending: int
    oldest_logged_at: datetime | None
    oldest_age: float  # seconds; 0 when nothing waits
    max_age: float
    failing: int
    parked: int
    last_success_at: datetime | None

    @property
    def ok(self) -> bool:
        return self.oldest_age < self.max_age

    def as_dict(self) -> dict:
        return {
            "status": "ok" if self.ok else "lagging",
            "pending_events": self.pending,
            "oldest_pending_logged_at": _iso(self.oldest_logged_at),
            "oldest_pending_age_seconds": round(self.oldest_age, 3),
            "max_age_seconds": self.max_age,
            "failing_entities": self.failing,
            "parked_entities": self.parked,
            "last_success_at": _iso(self.last_success_at),
        }


@dataclass(frozen=True)
class LagHistogram:
    """Cumulative counts of synced events by commit-to-delivered lag (Prometheus' shape)."""

    buckets: list[tuple[float, int]]  # (upper bound in seconds, events at most that late)
    count: int
    total_seconds: float


def health(*, max_age: float, now: datetime | None = None) -> Health:
    oldest = oldest_waiting_logged_at()
    entities = entity_counts()
    return Health(
        pending=ModelEvent.objects.pending().count(),
        oldest_logged_at=oldest,
        oldest_age=age_of(oldest, now=now),
        max_age=max_age,
        failing=entities["failing"],
        parked=entities["parked"],
        last_success_at=last_success_at(),
    )


def waiting_events():
    """Pending events of entities that are not parked: what the sync still has to deliver."""
    parked = EntitySyncState.objects.filter(
        entity_table=OuterRef("entity_table"),
        entity_pk=OuterRef("entity_pk"),
        parked_at__isnull=False,
    )
    return ModelEvent.objects.pending().filter(~Exists(parked))


def oldest_waiting_logged_at() -> datetime | None:
    return waiting_events().aggregate(oldest=Min("logged_at"))["oldest"]


def age_of(moment: datetime | None, *, now: datetime | None = None) -> float:
    """Seconds since `moment`; 0 for None (nothing waits)."""
    if moment is None:
        return 0.0
    return max(((now or timezone.now()) - moment).total_seconds(), 0.0)


def pending_by_table() -> dict[tuple[str, str], int]:
    """Pending events per (table, type), every tracked table and type listed, zeros included."""
    counts = dict.fromkeys(((table, t.value) for table in TABLES.values() for t in EventType), 0)
    rows = (
        ModelEvent.objects.pending()
        .order_by()
        .values_list("entity_table", "type")
        .annotate(count=Count("id"))
    )
    for table, event_type, count in rows:
        counts[(table, event_type)] = count
    return counts


def run_counts() -> dict[tuple[str, str], int]:
    """Runs per (mode, status) since the history began, every mode and status listed."""
    counts = dict.fromkeys(((m, s) for m in SyncRun.Mode.values for s in SyncRun.Status.values), 0)
    rows = SyncRun.objects.order_by().values_list("mode", "status").annotate(count=Count("id"))
    counts.update(((mode, status), count) for mode, status, count in rows)
    return counts


def call_counts() -> dict[tuple[str, str], int]:
    """Calls per (HTTP method, outcome), summed over every run: delivered or failed."""
    fields = {
        (Op.CREATE, "succeeded"): "calls_created",
        (Op.UPDATE, "succeeded"): "calls_updated",
        (Op.DELETE, "succeeded"): "calls_deleted",
        (Op.CREATE, "failed"): "calls_failed_created",
        (Op.UPDATE, "failed"): "calls_failed_updated",
        (Op.DELETE, "failed"): "calls_failed_deleted",
    }
    sums = SyncRun.objects.aggregate(**{name: Sum(name) for name in fields.values()})
    return {(op.method, outcome): sums[name] or 0 for (op, outcome), name in fields.items()}


def entity_counts() -> dict[str, int]:
    """Entities whose last call failed and that are still retried, and parked ones."""
    return EntitySyncState.objects.aggregate(
        failing=Count("id", filter=~Q(last_error="") & Q(parked_at__isnull=True)),
        parked=Count("id", filter=Q(parked_at__isnull=False)),
    )


def last_success_at() -> datetime | None:
    return (
        SyncRun.objects.filter(status=SyncRun.Status.SUCCEEDED, finished_at__isnull=False)
        .order_by("-finished_at")
        .values_list("finished_at", flat=True)
        .first()
    )


def target_rate() -> float | None:
    """The rate of calls a second the last run settled on (0: as fast as allowed); None before
    any run."""
    target = SyncTarget.objects.order_by("pk").first()
    return None if target is None else target.rate


def last_verification() -> SyncVerification | None:
    """The newest comparison of the target with the database (`sync_changes --verify`): of the
    target the sync state describes, once there is one (`--verify --url` of another is not),
    made since it was taken on."""
    verifications = SyncVerification.objects.order_by("-started_at", "-id")
    if (target := SyncTarget.objects.order_by("pk").first()) is not None:
        # Of it, since it was last taken on: one from before says nothing of it now.
        verifications = verifications.filter(target=target.url, started_at__gte=target.adopted_at)
    return verifications.first()


def lag_histogram(buckets: Sequence[float] = LAG_BUCKETS) -> LagHistogram:
    """Commit-to-delivered lag (synced_at - logged_at) of the synced events still kept, counted
    in one query by the database."""
    lag = ExpressionWrapper(F("synced_at") - F("logged_at"), output_field=DurationField())
    counts = {
        f"le_{n}": Count("id", filter=Q(lag__lte=timedelta(seconds=bound)))
        for n, bound in enumerate(buckets)
    }
    row = (
        ModelEvent.objects.synced()
        .annotate(lag=lag)
        .aggregate(count=Count("id"), total=Sum("lag"), **counts)
    )
    return LagHistogram(
        buckets=[(bound, row[f"le_{n}"]) for n, bound in enumerate(buckets)],
        count=row["count"],
        total_seconds=row["total"].total_seconds() if row["total"] is not None else 0.0,
    )


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None
