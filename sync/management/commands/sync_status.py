import json
from datetime import datetime, timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from sync import monitoring
from sync.changelog import (
    FailureGroup,
    PendingGroup,
    current_target,
    failed_entities,
    failure_groups,
    pending_summary,
    recent_decisions,
    recent_runs,
)
from sync.models import EntitySyncState, SyncDecision, SyncRun, SyncTarget, SyncVerification


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
        "type, the last sync runs, entities whose delivery failed, and the target."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--json",
            action="store_true",
            help="print the same facts, and the health figures, as one JSON document",
        )
        parser.add_argument(
            "--failing",
            action="store_true",
            help="only the failing and parked entities, grouped by kind and error, with counts "
            "and the age of the oldest failure",
        )
        parser.add_argument(
            "--check",
            action="store_true",
            help="exit 1 when the oldest change waiting is SYNC_HEALTH_MAX_AGE seconds old or "
            "older (when /health/sync/ answers 503)",
        )

    def handle(self, *args, **options) -> None:
        now = timezone.now()
        if options["failing"]:
            self.write_failing(failure_groups(), now=now, as_json=options["json"])
            return
        # One section per concern, each a service call plus a writer; add new sections here.
        pending = pending_summary(now=now)
        runs = recent_runs(limit=5)
        failures, failed_total = failed_entities(limit=50)
        health = monitoring.health(max_age=settings.SYNC_HEALTH_MAX_AGE, now=now)
        target = current_target()
        verification = monitoring.last_verification()
        decisions = recent_decisions(limit=5)
        if options["json"]:
            document = {
                "decisions": [decision_document(d) for d in decisions],
                "target": target_document(target),
                "verification": verification_document(verification),
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
            self.write_decisions(decisions)
            self.write_target(target)
            self.write_verification(verification, now=now)
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

    def write_failing(self, groups: list[FailureGroup], *, now, as_json: bool) -> None:
        failing = sum(group.failing for group in groups)
        parked = sum(group.parked for group in groups)
        if as_json:
            document = {
                "failing": failing,
                "parked": parked,
                "groups": [failure_group_document(group, now=now) for group in groups],
            }
            self.stdout.write(json.dumps(document, indent=2))
            return
        title = f"Failing entities by kind and error ({failing} failing, {parked} parked)"
        if not groups:
            self.write_section(title, ["None."])
            return
        lines = [f"{'kind':<8} {'status':>6} {'failing':>7} {'parked':>6} {'oldest':>7}  error"]
        lines += [
            f"{group.kind.value:<8} {group.status or 'none':>6} {group.failing:>7} "
            f"{group.parked:>6} {format_age(group.oldest_age(now)):>7}  {group.error_class}"
            for group in groups
        ]
        self.write_section(title, lines)

    def write_decisions(self, decisions: list[SyncDecision]) -> None:
        if not decisions:
            return
        lines = [
            f"{d.decided_at:%Y-%m-%d %H:%M:%S} {d.actor}: {d.count} {d.get_action_display()}"
            + (f" ({_described(d.filters)})" if d.filters else "")
            for d in decisions
        ]
        self.write_section("Operator decisions", lines)

    def write_target(self, target: SyncTarget | None) -> None:
        if target is None:
            self.write_section("Target", ["None yet: the import or the first run names it."])
            return
        line = f"{target.url} (since {target.adopted_at:%Y-%m-%d %H:%M:%S})"
        if target.rate:
            line += f"; paced at {target.rate:.1f} calls/s"
        elif target.rate is not None:
            line += "; as fast as allowed (no slowdown seen)"
        rewrites = [
            f"{kind} {field}" for kind, fields in target.rewrites.items() for field in fields
        ]
        if rewrites:
            line += f"; it rewrites {', '.join(rewrites)}"
        self.write_section("Target", [line])

    def write_verification(self, verification: SyncVerification | None, *, now) -> None:
        if verification is None:
            lines = ["None yet: sync_changes --verify compares the target with the database."]
        else:
            when = verification.finished_at or verification.started_at
            total = sum(sum(by_what.values()) for by_what in verification.counts.values())
            found = "equal" if verification.equal else f"{total} differences"
            lines = [
                f"#{verification.pk} {when:%Y-%m-%d %H:%M:%S} ({format_age(now - when)} ago): "
                f"{found}"
            ]
            lines += [
                f"{resource}: {c['missing']} missing, {c['extra']} extra, "
                f"{c['different']} different"
                for resource, c in verification.counts.items()
                if any(c.values())
            ]
        self.write_section("Last verification", lines)

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


def failure_group_document(group: FailureGroup, *, now) -> dict:
    return {
        "kind": group.kind.value,
        "status": group.status,
        "error_class": group.error_class,
        "failing": group.failing,
        "parked": group.parked,
        "oldest_failed_at": _iso(group.oldest_failed_at),
        "oldest_age_seconds": _seconds(group.oldest_age(now)),
    }


def decision_document(decision: SyncDecision) -> dict:
    return {
        "action": decision.action,
        "actor": decision.actor,
        "decided_at": _iso(decision.decided_at),
        "count": decision.count,
        "filters": decision.filters,
        "entities": decision.entities,
    }


def _described(filters: dict) -> str:
    return ", ".join(f"{name} {value}" for name, value in filters.items())


def target_document(target: SyncTarget | None) -> dict | None:
    if target is None:
        return None
    return {
        "url": target.url,
        "adopted_at": _iso(target.adopted_at),
        "complete": target.complete,
        "rewrites": target.rewrites,
        "keeps_ids": target.keeps_ids,
        "rate": target.rate,
    }


def verification_document(verification: SyncVerification | None) -> dict | None:
    if verification is None:
        return None
    return {
        "id": verification.pk,
        "finished_at": _iso(verification.finished_at),
        "target": verification.target,
        "equal": verification.equal,
        "counts": verification.counts,
        "awaiting": verification.awaiting,
    }


def run_document(run: SyncRun) -> dict:
    took = (run.finished_at - run.started_at) if run.finished_at else None
    return {
        "id": run.pk,
        "mode": run.mode,
        "target": run.target,
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
