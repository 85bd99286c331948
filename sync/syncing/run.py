"""sync_changes: deliver the pending change log (or a full diff) to the target.

A run reads what is pending, plans the fewest calls (`sync.planner`), then sends them phase by
phase: a phase's first steps go to worker threads in parallel, batch after batch without a pause,
and what came of them is recorded as the answers arrive; steps that need a decision (a lost
answer to a POST, a record found by content, a PUT the target could not apply) are decided in the
main thread and sent in rounds.

Crash safety rests on these rules:

- an entity's events are marked synced only once the target holds its state, in the same
  transaction that records what the target holds (`EntitySyncState`);
- before a POST is sent, the entity is flagged `create_unconfirmed` with the record (committed),
  so a run that finds the flag looks for that record by content before creating it again;
- a record found that way is taken only if no other entity holds it, so the mapping stays 1:1;
- PUT and DELETE are idempotent (a DELETE answered 404 counts as done).

So a run killed at any moment leaves only calls that the next run may safely repeat.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from queue import SimpleQueue

from django.db import DatabaseError, connection
from django.utils import timezone

from sync.batching import ramped
from sync.client import TargetApiClient, canonical_url
from sync.errors import TargetChanged
from sync.locking import RunLock, exclusive_run
from sync.models import SyncRun
from sync.planner import Call, Kind, Op, Plan
from sync.syncing import decisions, full, incremental, loading, outcomes
from sync.syncing.deliveries import Action, Delivery, Followups, Outcome, Result, Rewrites
from sync.syncing.dispatch import Dispatcher, StopSignal
from sync.syncing.report import FailedEntity, SyncOptions, SyncReport
from sync.target import remote_key

# Successful calls are recorded at least this often (in results or seconds).
FLUSH_EVERY_RESULTS = 100
FLUSH_EVERY_SECONDS = 0.5
ERROR_SUMMARY_LINES = 20
# Calls handed to the worker threads ahead of them, per thread; also a phase's first batch.
LOOK_AHEAD = 4

ProgressCallback = Callable[[int], None]
FailureCallback = Callable[[FailedEntity], None]


def sync_changes(
    *,
    client: TargetApiClient,
    options: SyncOptions | None = None,
    full: bool = False,
    dry_run: bool = False,
    on_planned: Callable[[int], None] | None = None,
    on_progress: ProgressCallback | None = None,
    on_failure: FailureCallback | None = None,
    lock: RunLock | None = None,
    stop: StopSignal | None = None,
) -> SyncReport:
    """Bring the target in step with the database; raises SyncLocked if a run is under way.

    `lock`: run under a run lock the caller already holds (and keeps) instead of taking one.
    `stop`: set it from another thread or a signal handler to make the run start no new call.
    """

    def execute(held: RunLock) -> SyncReport:
        return Runner(
            client=client,
            options=options or SyncOptions(),
            lock=held,
            full=full,
            dry_run=dry_run,
            on_planned=on_planned or (lambda total: None),
            on_progress=on_progress or (lambda n: None),
            on_failure=on_failure or (lambda failed: None),
            stop=stop,
        ).execute()

    if lock is not None:
        return execute(lock)
    with exclusive_run() as held:
        return execute(held)


class Runner:
    def __init__(
        self,
        *,
        client: TargetApiClient,
        options: SyncOptions,
        lock: RunLock,
        full: bool,
        dry_run: bool,
        on_planned: Callable[[int], None],
        on_progress: ProgressCallback,
        on_failure: FailureCallback,
        stop: StopSignal | None = None,
    ) -> None:
        self.options = options
        self.lock = lock
        self.full = full
        self.dry_run = dry_run
        self.on_planned = on_planned
        self.on_progress = on_progress
        self.report = SyncReport(mode="full" if full else "incremental", dry_run=dry_run)
        self.stop = stop or StopSignal()
        self.target = loading.the_target()
        self.report.target = canonical_url(client.base_url)
        rewrites = Rewrites(self.target.rewrites if self._same_target() else None)
        self.dispatcher = Dispatcher(client, self.stop, rewrites)
        self.client = client
        self.writer = outcomes.OutcomeWriter(
            report=self.report, max_attempts=options.max_attempts, on_failure=on_failure
        )
        # A create whose answers keep getting lost is sent as often as the client tries a call.
        self.max_posts = max(1, client.retries + 1)
        self.answered = 0  # calls the target answered with something other than a 5xx
        self.lock_lost = False
        # Some call was left unsent because the run was stopping.
        self.left_unsent = False
        self._buffer: list[Outcome] = []
        # The records this run deleted or tried to, and when each DELETE was sent and answered
        # (never, if it failed): a lookup may have seen one before it went (decisions.pick
        # tells them apart).
        self.deleted: dict[tuple[Kind, str], tuple[float, float]] = {}
        self._last_flush = time.monotonic()

    # --- Run --------------------------------------------------------------------------------------

    def _same_target(self) -> bool:
        return self.target is not None and self.target.url == self.report.target

    def _check_target(self) -> None:
        """An incremental run sends only to the target its sync state describes."""
        if self.target is None or self._same_target() or self.full:
            return
        raise TargetChanged(
            f"The sync state describes the target {self.target.url}, not {self.report.target}: "
            "its ids there mean nothing here, so nothing was sent. Check the URL; to move to "
            f"this target, run sync_changes --full --url {self.report.target} (it compares "
            "the whole target and adopts it)"
        )

    def execute(self) -> SyncReport:
        started = time.monotonic()
        self._check_target()
        if self.options.time_budget:
            self.stop.deadline = started + self.options.time_budget
            self.stop.budget = self.options.time_budget
        run = None
        if not self.dry_run:
            outcomes.abandon(loading.unfinished_runs(besides=None))
            mode = SyncRun.Mode.FULL if self.full else SyncRun.Mode.INCREMENTAL
            run = SyncRun.objects.create(mode=mode, target=self.report.target)
            self.report.run_id = run.pk
        try:
            (full.run if self.full else incremental.run)(self)
            if self.writer.server_errors and not self.lock_lost:
                # 5xx answers count towards parking only while the target answers others.
                if not self.answered and not self.stop.is_set():
                    self.answered = self.dispatcher.probe()
                if self.answered:
                    self.writer.count_server_errors()
        except BaseException as exc:
            if run is not None:
                self._finish(run, started, status=SyncRun.Status.FAILED, error=str(exc))
            raise
        if self.stop.is_set() and (self.left_unsent or self.lock_lost):
            self.report.stopped_early = self.stop.reason
        if run is not None:
            if self.lock_lost:
                pass  # nothing more is recorded without the lock
            elif self.target is None and self.answered:
                # The first run that reached a target (no import named one): it names it.
                outcomes.adopt_target(self.report.target)
                outcomes.save_rewrites(self.dispatcher.rewrites.as_json())
            elif self.full and not self._same_target() and not self.report.stopped_early:
                # A full run that went through makes the target hold our records: adopt it.
                outcomes.adopt_target(self.report.target)
                outcomes.save_rewrites(self.dispatcher.rewrites.as_json())
                self.report.adopted_target = self.target is not None
            status = SyncRun.Status.SUCCEEDED if self.report.ok else SyncRun.Status.PARTIAL
            self._finish(run, started, status=status)
        self.report.duration = time.monotonic() - started
        return self.report

    def _finish(self, run: SyncRun, started: float, *, status: str, error: str = "") -> None:
        report = self.report
        lines = [str(failed) for failed in report.failed[:ERROR_SUMMARY_LINES]]
        if len(report.failed) > ERROR_SUMMARY_LINES:
            lines.append(f"... and {len(report.failed) - ERROR_SUMMARY_LINES} more")
        lines[:0] = [text for text in (error, self.stop.reason) if text]
        run.status = status
        run.finished_at = timezone.now()
        run.events_pending = report.events_pending
        run.calls_created = report.calls[Op.CREATE]
        run.calls_updated = report.calls[Op.UPDATE]
        run.calls_deleted = report.calls[Op.DELETE]
        run.calls_failed_created = report.failed_calls[Op.CREATE]
        run.calls_failed_updated = report.failed_calls[Op.UPDATE]
        run.calls_failed_deleted = report.failed_calls[Op.DELETE]
        run.entities_synced = report.entities_synced
        run.entities_unchanged = report.entities_unchanged
        run.entities_failed = len(report.failed)
        run.error_summary = "\n".join(lines)
        if self.lock_lost:
            connection.close()  # the session that held the lock is gone: record on a new one
        try:
            run.save()
        except DatabaseError:
            if not self.lock_lost:
                raise

    # --- Sending ----------------------------------------------------------------------------------

    def deliver(self, plan: Plan, steps: Callable[[tuple[Call, ...]], Followups]) -> None:
        """Send the plan phase by phase; `steps` turns a batch of calls into first steps.

        Within a phase the calls flow without a pause: the next batch is loaded and made ready
        when the calls under way run low, not once they have all been answered. A phase's first
        batch is small (each next one twice as large, up to the batch size), so its first calls
        go out at once. The answers that need a decision are decided once the calls before them
        are answered, in rounds (at most a batch of them at a time).
        """
        self.on_planned(len(plan.calls))
        first = self.options.concurrency * LOOK_AHEAD
        with ThreadPoolExecutor(max_workers=self.options.concurrency) as pool:
            for _phase, calls in plan.by_phase():
                batches = ramped(calls, first=first, size=self.options.batch_size)
                stream = self._first_steps(batches, steps)
                more = True
                while more:
                    undecided, more = self._send_all(pool, stream, hold_at=self.options.batch_size)
                    self._flush()
                    self._rounds(pool, undecided)
                self._flush()

    def _first_steps(
        self, batches: Iterable[list[Call]], steps: Callable[[tuple[Call, ...]], Followups]
    ) -> Iterator[Delivery]:
        """The first steps of a phase's calls, a batch at a time, each batch made ready (its
        creates flagged) before its first call goes out; none once the run is stopping."""
        for batch in batches:
            if self._stopping():
                self._not_sent(batch)
                continue
            step = steps(tuple(batch))
            self._settle(step.outcomes)
            self._ready(step.deliveries)
            yield from step.deliveries

    def _ready(self, deliveries: list[Delivery]) -> None:
        """Commit what must be known before these calls are sent: creates flagged, and the hash
        of what the target holds forgotten before a PUT."""
        posts = [d for d in deliveries if d.action is Action.POST]
        puts = [d for d in deliveries if d.action is Action.PUT]
        if (posts or puts) and not self._stopping():
            outcomes.flag_creates(posts, run_id=self.report.run_id)
            outcomes.unsettle(puts)

    def _rounds(self, pool: ThreadPoolExecutor, undecided: list[Outcome]) -> None:
        """Decide what follows the answers that need thought, send that, and so on."""
        last_round = self.max_posts + 2  # each POST, then a PUT to the record found
        for round_number in range(1, last_round + 1):
            if not undecided or self.lock_lost:
                return
            step = decisions.decide(
                undecided,
                last_round=round_number == last_round,
                max_posts=self.max_posts,
                deleted=self.deleted,
                rewrites=self.dispatcher.rewrites,
                wait_until=self.stop.deadline or math.inf,
            )
            self._settle(step.outcomes)
            if round_number == last_round:
                return  # what is left stays pending for the next run
            self._ready(step.deliveries)
            undecided, _ = self._send_all(pool, step.deliveries)
            self._flush()

    def _send_all(
        self, pool: ThreadPoolExecutor, deliveries: Iterable[Delivery], *, hold_at: int = 0
    ) -> tuple[list[Outcome], bool]:
        """Send every step, recording final outcomes as they arrive; return those to decide,
        and whether steps are left: with `hold_at`, sending pauses once that many wait for a
        decision (the rest are sent by the next call with the same iterator)."""
        undecided: list[Outcome] = []
        # Each finished call puts itself here: one hand-off per call, where waiting on the
        # calls in flight (concurrent.futures.wait) visits every one of them each time.
        finished: SimpleQueue[Future[Outcome]] = SimpleQueue()
        in_flight = 0
        paused = False

        def collect() -> int:
            """Record the calls that finished (waiting for one); return how many."""
            done = [finished.get()]
            while not finished.empty():
                done.append(finished.get())
            self._stopping(quick=True)
            for future in done:
                outcome = future.result()
                if outcome.http_status is not None and outcome.http_status < 500:
                    self.answered += 1
                delivery = outcome.delivery
                if delivery.action is Action.DELETE and outcome.sent:
                    # A DELETE that failed may still be applied at any time.
                    answered_at = outcome.answered_at if outcome.ok else math.inf
                    key = (delivery.entity.kind, remote_key(delivery.remote_id))
                    self.deleted[key] = (outcome.sent_at, answered_at)
                if outcome.stopped:
                    self.left_unsent = True
                if outcome.result in (Result.FOUND, Result.GONE):
                    undecided.append(outcome)
                else:
                    self._settle([outcome])
            return len(done)

        for delivery in deliveries:
            pool.submit(self.dispatcher.send, delivery).add_done_callback(finished.put)
            in_flight += 1
            # A bounded queue, so results are recorded while calls are sent.
            if in_flight >= self.options.concurrency * LOOK_AHEAD:
                in_flight -= collect()
                if hold_at and len(undecided) >= hold_at:
                    paused = True
                    break
        while in_flight:
            in_flight -= collect()
        return undecided, paused

    def _settle(self, final: list[Outcome]) -> None:
        for _ in final:
            self.on_progress(1)
        self._buffer.extend(final)
        due = time.monotonic() - self._last_flush >= FLUSH_EVERY_SECONDS
        if len(self._buffer) >= FLUSH_EVERY_RESULTS or (self._buffer and due):
            self._flush()

    def _flush(self) -> None:
        buffered, self._buffer = self._buffer, []
        self._last_flush = time.monotonic()
        rewrites = self.dispatcher.rewrites
        if rewrites.changed and self._same_target() and not self.lock_lost:
            rewrites.changed = False
            outcomes.save_rewrites(rewrites.as_json())
        if not buffered:
            return
        if self.lock_lost or self.lock.lost():
            self._lose_lock()
            # Nothing is recorded without the lock: the next run repeats these safely.
            self.report.failed += [
                FailedEntity(o.delivery.entity, str(o.delivery.call), "not recorded: lock lost")
                for o in buffered
            ]
            return
        self.writer.write(buffered)

    def _stopping(self, *, quick: bool = False) -> bool:
        # A quick sign is confirmed with a real check before the run gives up its lock.
        if not self.lock_lost and (not quick or self.lock.lost(quick=True)) and self.lock.lost():
            self._lose_lock()
        return self.stop.is_set()

    def _lose_lock(self) -> None:
        self.lock_lost = True
        self.stop.set("stopped: it lost its run lock (the database session that held it ended)")

    def _not_sent(self, calls: Iterable[Call]) -> None:
        self.left_unsent = True
        for call in calls:
            self.report.failed.append(
                FailedEntity(call.key, str(call), f"not sent: {self.stop.reason}")
            )
