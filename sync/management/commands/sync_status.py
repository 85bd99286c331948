from datetime import timedelta

from django.core.management.base import BaseCommand
from django.utils import timezone

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

    def handle(self, *args, **options) -> None:
        now = timezone.now()
        # One section per concern, each a service call plus a writer; add new sections here.
        self.write_pending(pending_summary(now=now))
        self.write_runs(recent_runs(limit=5), now=now)
        self.write_failures(*failed_entities(limit=50))

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
                f"ago) {run.mode} {run.status}: {run.entities_synced} synced, "
                f"{run.entities_failed} failed; calls {run.calls_created} created, "
                f"{run.calls_updated} updated, {run.calls_deleted} deleted; {took}"
            )
        self.write_section("Last sync runs", lines)

    def write_failures(self, states: list[EntitySyncState], total: int) -> None:
        if not states:
            self.write_section("Failed entities", ["None."])
            return
        lines = []
        for state in states:
            runs = f"{state.attempts} failed run{'' if state.attempts == 1 else 's'}"
            if state.parked_at:
                status = f"PARKED after {runs}"
            elif state.attempts:
                status = f"retrying ({runs} counted towards parking)"
            else:
                status = "retrying (a passing failure, not counted towards parking)"
            lines.append(f"{state.entity_table}#{state.entity_pk} {status}: {state.last_error}")
        if total > len(states):
            lines.append(f"... and {total - len(states)} more (see the admin)")
        self.write_section(f"Failed entities ({total})", lines)
