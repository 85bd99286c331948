"""The run: a source's plan, delivered to the target.

A run asks its source (the pending events, or a snapshot diffed with the target) for a plan of
the fewest calls, then sends them wave by wave (a wave waits only for the calls its calls need
first, `Plan.waves`): a wave's first steps go to worker threads in parallel, batch after batch
without a pause, and what came of them is recorded as the answers
arrive; steps that need a decision (a lost answer to a POST, a record found by content, a PUT
the target could not apply) are decided in the main thread and sent in rounds. Control flows one
way: the run pulls steps from the source and hands outcomes to the writer; neither calls back.

Crash safety rests on these rules:

- an entity's events are marked synced only once the target holds its state, in the same
  transaction that records what the target holds (`EntitySyncState`);
- before a POST is sent, the entity is flagged `create_unconfirmed` with the record and the
  run (committed), so a run that finds the flag looks for that record by content before
  creating it again;
- a record found that way is taken only if no other entity holds it, so the mapping stays 1:1;
- PUT and DELETE are idempotent (a DELETE answered 404 counts as done).

So a run killed at any moment leaves only calls that the next run may safely repeat.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import groupby
from queue import SimpleQueue
from typing import cast

from sync.batching import ramped
from sync.errors import REFUSED_CREDENTIALS
from sync.planner import Call, Kind, Plan
from sync.syncing import decisions, loading, outcomes
from sync.syncing.deliveries import Action, Delivery, Outcome, Result, Source
from sync.syncing.dispatch import Dispatcher
from sync.syncing.guard import RunGuard
from sync.syncing.report import FailedEntity, SyncOptions, SyncReport
from sync.target import RemoteId, remote_key

# Successful calls are recorded at least this often (in results or seconds).
FLUSH_EVERY_RESULTS = 100
FLUSH_EVERY_SECONDS = 0.5
# Calls handed to the worker threads ahead of them, per thread; also a first batch's size.
LOOK_AHEAD = 4


class Runner:
    """One run: its source's plan, sent wave by wave, decided in rounds, recorded."""

    def __init__(
        self,
        *,
        source: Source,
        dispatcher: Dispatcher,
        writer: outcomes.OutcomeWriter,
        guard: RunGuard,
        options: SyncOptions,
        dry_run: bool,
        max_posts: int,
        run_id: int | None,
        on_planned: Callable[[int], None],
        on_progress: Callable[[int], None],
    ) -> None:
        self.source, self.dispatcher, self.writer, self.guard = source, dispatcher, writer, guard
        self.options, self.dry_run, self.run_id = options, dry_run, run_id
        self.report = writer.report
        self.on_planned, self.on_progress = on_planned, on_progress
        # A create whose answers keep getting lost is sent as often as the client tries a call.
        self.max_posts = max_posts
        # Calls the target answered with something other than a 5xx or a refusal of who calls.
        self.answered = 0
        # Writes the target carried out: credentials refused by a target that took others are
        # the entity's; ones it may read with but not write with are not.
        self.wrote = 0
        # The records this run deleted or tried to, and when each DELETE was sent and answered
        # (never, if it failed): a lookup may have seen one before it went (decisions.pick
        # tells them apart).
        self.deleted: dict[tuple[Kind, str], tuple[float, float]] = {}
        # What the target is seen to do is saved as it is learned (when the target is ours).
        self.save_traits = False
        self._buffer: list[Outcome] = []
        self._last_flush = time.monotonic()

    # --- The run ----------------------------------------------------------------------------------

    def execute(self) -> SyncReport:
        """Plan; return on a dry run; deliver."""
        plan = self._plan()
        if not self.dry_run:
            self.deliver(plan)
        self.report.stopped_early = self.guard.stopped_early
        return self.report

    def _plan(self) -> Plan:
        plan = self.source.plan(dry_run=self.dry_run)
        self.report.events_pending = self.source.events_pending
        self.report.planned = self.source.planned
        if self.dry_run:
            self.report.entities_unchanged = self.source.unchanged
        for notice in self.source.notices:
            self.report.notice(notice)
        self.writer.skipped(self.source.skipped)
        return plan

    # --- Sending ----------------------------------------------------------------------------------

    def deliver(self, plan: Plan) -> None:
        """Send the plan wave by wave, after the writes it needs first (`prepare`).

        Within a wave the calls flow without a pause: the next batch is loaded and made ready
        when the calls under way run low, not once they have all been answered. A batch holds
        calls of one kind and operation; the first of each kind and operation is small (each
        next one twice as large, up to the batch size), so its first calls go out at once. The
        answers that need a decision are decided once the calls before them are answered, in
        rounds (at most a batch of them at a time).
        """
        self.writer.write(self.source.prepare().settled)
        self.on_planned(len(plan.calls))
        first = self.options.concurrency * LOOK_AHEAD
        with ThreadPoolExecutor(max_workers=self.options.concurrency) as pool:
            for wave in plan.waves():
                batches = (
                    batch
                    for calls in _by_kind_and_op(wave)
                    for batch in ramped(calls, first=first, size=self.options.batch_size)
                )
                stream = self._first_steps(batches)
                more = True
                while more:
                    undecided, more = self._send_all(pool, stream, hold_at=self.options.batch_size)
                    self._flush()
                    self._rounds(pool, undecided)
                self._flush()
        if self.writer.server_errors and not self.guard.lock_lost:
            # 5xx answers, and credentials refused, count towards parking only while the
            # target answers others: then they are the entity's, not the whole target's.
            if not self.answered and not self.guard.stop.is_set():
                self.answered = self.dispatcher.probe()
            if self.answered:
                self.writer.count_server_errors(refusals=self.wrote > 0)

    def _first_steps(self, batches: Iterable[list[Call]]) -> Iterator[Delivery]:
        """The first steps of a wave's calls, a batch at a time, each batch made ready (its
        creates flagged) before its first call goes out; none once the run is stopping."""
        for batch in batches:
            if self.guard.stopping():
                self._not_sent(batch)
                continue
            steps = self.source.first_steps(tuple(batch))
            self._record(steps.settled)
            self._ready(steps.to_send)
            yield from steps.to_send

    def _ready(self, deliveries: list[Delivery]) -> None:
        """Commit what must be known before these calls are sent: creates flagged, records a
        lookup found taken as their entities', and what the target holds forgotten before a
        PUT."""
        posts = [d for d in deliveries if d.action is Action.POST]
        puts = [d for d in deliveries if d.action is Action.PUT]
        if (posts or puts) and not self.guard.stopping():
            outcomes.flag_creates(posts, run_id=self.run_id)
            outcomes.adopt([d for d in puts if d.adopts])
            outcomes.forget_delivered(puts)

    def _rounds(self, pool: ThreadPoolExecutor, undecided: list[Outcome]) -> None:
        """Decide what follows the answers that need thought, send that, and so on."""
        last_round = self.max_posts + 2  # each POST, then a PUT to the record found
        for round_number in range(1, last_round + 1):
            if not undecided or self.guard.lock_lost:
                return
            found = [o for o in undecided if o.result is Result.FOUND]
            steps = decisions.decide(
                undecided,
                claimed=loading.claimed_for(found),
                last_round=round_number == last_round,
                max_posts=self.max_posts,
                deleted=self.deleted,
                traits=self.dispatcher.traits,
                wait_until=self.guard.stop.deadline or math.inf,
            )
            self._record(steps.settled)
            if round_number == last_round:
                return  # what is left stays pending for the next run
            self._ready(steps.to_send)
            undecided, _ = self._send_all(pool, steps.to_send)
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
            self.guard.stopping(quick=True)
            for future in done:
                outcome = future.result()
                self._note(outcome)
                if outcome.result in (Result.FOUND, Result.GONE):
                    undecided.append(outcome)
                else:
                    self._record([outcome])
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

    def _note(self, outcome: Outcome) -> None:
        """What the run keeps of each answer: that the target answered, the DELETEs it sent
        (a lookup may have seen their records before they went), calls left unsent."""
        status = outcome.http_status
        if status is not None and status < 500 and status not in REFUSED_CREDENTIALS:
            self.answered += 1
        delivery = outcome.delivery
        if outcome.ok and outcome.sent and delivery.action is not Action.FIND:
            self.wrote += 1
        if delivery.action is Action.DELETE and outcome.sent:
            # A DELETE that failed may still be applied at any time.
            answered_at = outcome.answered_at if outcome.ok else math.inf
            # A DELETE is sent to a remote id.
            key = (delivery.entity.kind, remote_key(cast(RemoteId, delivery.remote_id)))
            self.deleted[key] = (outcome.sent_at, answered_at)
        if outcome.stopped:
            self.guard.left_unsent = True

    def _record(self, final: list[Outcome]) -> None:
        """Final outcomes, recorded in batches (at least every FLUSH_EVERY_SECONDS)."""
        for _ in final:
            self.on_progress(1)
        self._buffer.extend(final)
        due = time.monotonic() - self._last_flush >= FLUSH_EVERY_SECONDS
        if len(self._buffer) >= FLUSH_EVERY_RESULTS or (self._buffer and due):
            self._flush()

    def _flush(self) -> None:
        buffered, self._buffer = self._buffer, []
        self._last_flush = time.monotonic()
        traits = self.dispatcher.traits
        if not (buffered or traits.changed):
            return
        if not self.guard.may_record():
            # Nothing is recorded without the lock: the next run repeats these safely.
            self.report.failed += [
                FailedEntity(o.delivery.entity, str(o.delivery.call), "not recorded: lock lost")
                for o in buffered
            ]
            return
        if traits.changed and self.save_traits:
            traits.changed = False
            outcomes.save_traits(traits)
        self.writer.write(buffered)

    def _not_sent(self, calls: Iterable[Call]) -> None:
        self.guard.left_unsent = True
        for call in calls:
            failed = FailedEntity(call.key, str(call), f"not sent: {self.guard.stop.reason}")
            self.report.failed.append(failed)


def _by_kind_and_op(calls: tuple[Call, ...]) -> list[list[Call]]:
    """A wave's calls in runs of one kind and operation (a batch is loaded for one), in order."""
    return [list(run) for _, run in groupby(calls, key=lambda call: (call.key.kind, call.op))]
