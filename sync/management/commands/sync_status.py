import json
from datetime import datetime, timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from sync import monitoring
from sync.changelog import (
    PendingGroup,
    failed_entities,
    pending_summary,
    recent_runs,
)
from sync.models import EntitySyncState, SyncRun


def format_age(age: timedelta) -> str:
    """A short age such as `2d 4h`, `3h 12m`, `5m 09s` or `42s`."""
    seconds = int(age.total_seconds())
    days, seconds = divmod(seconds, 86400)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {seconds:02d}s"
    return f"{seconds}s"


class Command(BaseCommand):
    help = (
        "Show what the synchronisation still has to do: pending change events per table and "
        "type, the last sync runs, and entities whose delivery failed."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--json",
            action="store_true",
            help="print the same facts, and the health figures, as one JSON document",
        )
        parser.add_argument(
            "--check",
            action="store_true",
            help="exit 1 when the oldest change waiting is SYNC_HEALTH_MAX_AGE seconds old or "
            "older (when /health/sync/ answers 503)",
        )

    def handle(self, *args, **options) -> None:
        now = timezone.now()
        # One section per concern, each a service call plus a writer; add new sections here.
        pending = pending_summary(now=now)
        runs = recent_runs(limit=5)
        failures, failed_total = failed_entities(limit=50)
        health = monitoring.health(max_age=settings.SYNC_HEALTH_MAX_AGE, now=now)
        if options["json"]:
            document = {
                "pending": pending_document(pending),
                "runs": [run_document(run) for run in runs],
                "failed_entities": {
                    "total": failed_total,
                    "entities": [failure_document(state) for state in failures],
                },
                "health": health.as_dict(),
            }
            self.stdout.write(json.dumps(document, indent=2))
        else:
            self.write_pending(pending)
            self.write_runs(runs, now=now)
            self.write_failures(failures, failed_total)
        if options["check"] and not health.ok:
            raise CommandError(
                f"lagging: the oldest change waiting is {health.oldest_age:.0f} s old "
                f"(SYNC_HEALTH_MAX_AGE is {health.max_age:g} s)",
                returncode=1,
            )

    def write_section(self, title: str, lines: list[str]) -> None:
        self.stdout.write(self.style.MIGRATE_HEADING(title))
        for line in lines:
            self.stdout.write(f"  {line}")

    def write_pending(self, groups: list[PendingGroup]) -> None:
        if not groups:
            self.write_section("Pending events", ["No pending events."])
            return
        total = sum(group.count for group in groups)
        table_width = max(len("table"), *(len(group.entity_table) for group in groups))
        lines = [f"{'table':<{table_width}}  {'type':<7}  {'count':>7}  oldest"]
        lines += [
            f"{group.entity_table:<{table_width}}  {group.type:<7}  {group.count:>7}  "
            f"{format_age(group.oldest_age)}"
            for group in groups
        ]
        oldest = max(group.oldest_age for group in groups)
        lines.append(f"{'total':<{table_width}}  {'':<7}  {total:>7}  {format_age(oldest)}")
        self.write_section("Pending events", lines)

    def write_runs(self, runs: list[SyncRun], *, now) -> None:
        if not runs:
            self.write_section("Last sync runs", ["No sync has run yet."])
            return
        lines = []
        for run in runs:
            took = (
                f"{(run.finished_at - run.started_at).total_seconds():.1f} s"
                if run.finished_at
                else "unfinished"
            )
            lines.append(
                f"#{run.pk} {run.started_at:%Y-%m-%d %H:%M:%S} ({format_age(now - run.started_at)} "
                f"ago) {run.mode} {run.status}{stopped(run)}: {run.entities_synced} synced, "
                f"{run.entities_failed} failed; calls {run.calls_created} created, "
                f"{run.calls_updated} updated, {run.calls_deleted} deleted; {took}"
            )
        self.write_section("Last sync runs", lines)

    def write_failures(self, states: list[EntitySyncState], total: int) -> None:
        if not states:
            self.write_section("Failed entities", ["None."])
            return
        lines = [
            f"{state.entity_table}#{state.entity_pk} {failure_status(state)}: {state.last_error}"
            for state in states
        ]
        if total > len(states):
            lines.append(f"... and {total - len(states)} more (see the admin)")
        self.write_section(f"Failed entities ({total})", lines)


def stopped(run: SyncRun) -> str:
    """Why a run stopped early (a signal, its time budget, a lost lock), after a comma."""
    first = run.error_summary.partition("\n")[0]
    return f", {first}" if first.startswith("stopped") else ""


def failure_status(state: EntitySyncState) -> str:
    runs = f"{state.attempts} failed run{'' if state.attempts == 1 else 's'}"
    if state.parked_at:
        return f"PARKED after {runs}"
    if state.attempts:
        return f"retrying ({runs} counted towards parking)"
    return "retrying (a passing failure, not counted towards parking)"


# --- The same facts as JSON (sync_status --json) -------------------------------------------------


def pending_document(groups: list[PendingGroup]) -> dict:
    return {
        "total": sum(group.count for group in groups),
        "oldest_age_seconds": max((_seconds(g.oldest_age) for g in groups), default=0.0),
        "groups": [
            {
                "table": group.entity_table,
                "type": group.type,
                "count": group.count,
                "oldest_logged_at": _iso(group.oldest_logged_at),
                "oldest_age_seconds": _seconds(group.oldest_age),
            }
            for group in groups
        ],
    }


def run_document(run: SyncRun) -> dict:
    took = (run.finished_at - run.started_at) if run.finished_at else None
    return {
        "id": run.pk,
        "mode": run.mode,
        "status": run.status,
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
        "duration_seconds": _seconds(took) if took is not None else None,
        "events_pending": run.events_pending,
        "entities_synced": run.entities_synced,
        "entities_unchanged": run.entities_unchanged,
        "entities_failed": run.entities_failed,
        "calls": {
            "created": run.calls_created,
            "updated": run.calls_updated,
            "deleted": run.calls_deleted,
        },
        "failed_calls": {
            "created": run.calls_failed_created,
            "updated": run.calls_failed_updated,
            "deleted": run.calls_failed_deleted,
        },
        "error_summary": run.error_summary,
    }


def failure_document(state: EntitySyncState) -> dict:
    return {
        "table": state.entity_table,
        "pk": state.entity_pk,
        "remote_id": state.remote_id,
        "parked": state.parked_at is not None,
        "status": failure_status(state),
        "attempts": state.attempts,
        "parked_at": _iso(state.parked_at),
        "last_failed_at": _iso(state.last_failed_at),
        "last_error": state.last_error,
    }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _seconds(age: timedelta) -> float:
    return round(age.total_seconds(), 3)
