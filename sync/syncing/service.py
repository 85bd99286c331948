"""sync_changes, the entry point of a run: the run lock, the target the sync state describes,
the run's place in the history (`SyncRun`), and the parts a run is built from."""

from __future__ import annotations

import time
from collections.abc import Callable

from sync.client import TargetApiClient, canonical_url
from sync.errors import TargetChanged
from sync.locking import RunLock, exclusive_run
from sync.models import SyncRun, SyncTarget
from sync.syncing import loading, outcomes
from sync.syncing.deliveries import Source, TargetTraits
from sync.syncing.dispatch import Dispatcher, StopSignal
from sync.syncing.full import FullSource
from sync.syncing.guard import RunGuard
from sync.syncing.incremental import IncrementalSource
from sync.syncing.report import FailedEntity, SyncOptions, SyncReport
from sync.syncing.run import Runner

ERROR_SUMMARY_LINES = 20


def sync_changes(
    *,
    client: TargetApiClient,
    options: SyncOptions | None = None,
    full: bool = False,
    dry_run: bool = False,
    on_planned: Callable[[int], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
    on_failure: Callable[[FailedEntity], None] | None = None,
    lock: RunLock | None = None,
    stop: StopSignal | None = None,
) -> SyncReport:
    """Bring the target in step with the database; raises SyncLocked if a run is under way.

    `lock`: run under a run lock the caller already holds (and keeps) instead of taking one.
    `stop`: set it from another thread or a signal handler to make the run start no new call.
    """
    options = options or SyncOptions()

    def execute(held: RunLock) -> SyncReport:
        started = time.monotonic()
        guard = RunGuard(held, stop or StopSignal())
        url = canonical_url(client.base_url)
        target = loading.the_target()
        # The target the sync state describes, if it is this one.
        current = target if target is not None and target.url == url else None
        same = current is not None
        if not full:
            _check_target(target, url)
        if options.time_budget:
            guard.stop.deadline = started + options.time_budget
            guard.stop.budget = options.time_budget
        report = SyncReport(mode="full" if full else "incremental", dry_run=dry_run, target=url)
        traits = TargetTraits(current.rewrites, current.keeps_ids) if current else TargetTraits()
        # The pace starts where the last run to this target left it, below the ceilings.
        client.pacer.resume(
            (current.rate or 0.0) if current else 0.0, max_concurrency=options.concurrency
        )
        if not dry_run:
            report.run_id = outcomes.start_run(
                full=full,
                target=url,
                unfinished=loading.unfinished_runs(),
                timeout=client.timeout,
            )
        writer = outcomes.OutcomeWriter(
            report=report,
            max_attempts=options.max_attempts,
            on_failure=on_failure or (lambda failed: None),
        )
        source: Source
        if full:

            def adopt() -> None:
                # Once its lists are read and before the first write, the sync state describes
                # the new target (in part, when it described another: only a full run to it, or
                # back, may run until one goes through). One it could not read changes nothing.
                # A run stopped meanwhile (a signal, its time budget) sends nothing: nor this.
                if not (same or dry_run or guard.stop.is_set()):
                    outcomes.adopt_target(url, complete=target is None)

            source = FullSource(
                client=client,
                options=options,
                traits=traits,
                settle_time=client.timeout,
                on_read=adopt,
            )
        else:
            source = IncrementalSource(
                options=options,
                settle_time=client.timeout,
                undelivered_posts=writer.undelivered_posts,
            )
        runner = Runner(
            source=source,
            dispatcher=Dispatcher(client, guard.stop, traits),
            writer=writer,
            guard=guard,
            options=options,
            dry_run=dry_run,
            max_posts=max(1, client.retries + 1),
            run_id=report.run_id,
            on_planned=on_planned or (lambda total: None),
            on_progress=on_progress or (lambda done: None),
        )
        runner.save_traits = same or (full and not dry_run)
        try:
            runner.execute()
        except BaseException as exc:
            _finish(report, guard, SyncRun.Status.FAILED, error=str(exc))
            raise
        if not (dry_run or guard.lock_lost):
            if full and not report.stopped_early:
                outcomes.target_complete(url, traits)  # the full run went through
                report.adopted_target = target is not None and not same
            elif target is None and runner.answered:
                # The first run that reached a target (no import named one) names it.
                outcomes.adopt_target(url)
                outcomes.save_traits(traits)
            outcomes.save_pace(url, client.pacer.rate)
        status = SyncRun.Status.SUCCEEDED if report.ok else SyncRun.Status.PARTIAL
        _finish(report, guard, status)
        report.duration = time.monotonic() - started
        return report

    if lock is not None:
        return execute(lock)
    with exclusive_run() as held:
        return execute(held)


def _check_target(target: SyncTarget | None, url: str) -> None:
    """An incremental run sends only to the target the sync state describes, whole."""
    if target is None:
        return
    if target.url != url:
        raise TargetChanged(
            f"The sync state describes the target {target.url}, not {url}: its ids there mean "
            "nothing here, so nothing was sent. Check the URL; to move to this target, run "
            f"sync_changes --full --url {url} (it compares the whole target and adopts it)"
        )
    if not target.complete:
        raise TargetChanged(
            f"A full run to {url} began and did not go through, so the sync state describes it "
            f"only in part; nothing was sent. Run sync_changes --full --url {url} again (or "
            "--full to the URL before, to go back)"
        )


def _finish(report: SyncReport, guard: RunGuard, status: str, *, error: str = "") -> None:
    """The run's end in the history: its status, counts and first failures."""
    if report.run_id is None:
        return
    lines = [str(failed) for failed in report.failed[:ERROR_SUMMARY_LINES]]
    if len(report.failed) > ERROR_SUMMARY_LINES:
        lines.append(f"... and {len(report.failed) - ERROR_SUMMARY_LINES} more")
    lines[:0] = [text for text in (error, guard.stop.reason) if text]
    outcomes.finish_run(
        report.run_id, report, status=status, summary=lines, lock_lost=guard.lock_lost
    )
