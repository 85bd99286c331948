"""sync_changes: deliver the pending change log (or a full diff) to the target.

Crash safety rests on three rules:

- an entity's events are marked synced only after its call succeeded, in the run that made it;
- before a POST is sent, the entity is flagged `create_unconfirmed` (committed), so a run that
  finds the flag looks the record up with a GET before creating it again;
- PUT and DELETE are idempotent (a DELETE answered 404 counts as done).

So a run killed at any moment leaves only calls that the next run may safely repeat.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.db.models import Max, Q
from django.utils import timezone

from news.models import Comment, Post
from sync.batching import chunked
from sync.client import TargetApiClient, TargetApiError
from sync.locking import exclusive_run
from sync.models import EntitySyncState, ModelEvent, SyncRun
from sync.planner import Call, EntityKey, Event, EventType, Kind, Op, Plan, plan_calls, plan_full

MODELS: dict[Kind, type[Post] | type[Comment]] = {Kind.POST: Post, Kind.COMMENT: Comment}
TABLES: dict[Kind, str] = {kind: model._meta.db_table for kind, model in MODELS.items()}
KINDS: dict[str, Kind] = {table: kind for kind, table in TABLES.items()}

# Consecutive calls that found the target unreachable before the run stops sending.
CIRCUIT_BREAKER_THRESHOLD = 10
# Successful calls are recorded at least this often (in results or seconds).
FLUSH_EVERY_RESULTS = 100
FLUSH_EVERY_SECONDS = 0.5
ERROR_SUMMARY_LINES = 20


@dataclass(frozen=True)
class Delivery:
    """A call ready to send: its payload, the id on the target, and what to settle."""

    call: Call
    entity: EntityKey | None
    remote_id: int
    payload: dict[str, Any] | None = None
    check_first: bool = False


@dataclass(frozen=True)
class Outcome:
    delivery: Delivery
    ok: bool
    remote_id: int | None = None
    error: str = ""
    permanent: bool = False
    sent: bool = True


@dataclass(frozen=True)
class FailedEntity:
    entity: EntityKey
    call: str
    error: str
    permanent: bool = False

    def __str__(self) -> str:
        return f"{self.call}: {self.error}"


@dataclass
class SyncReport:
    mode: str
    dry_run: bool
    events_pending: int = 0
    calls: dict[Op, int] = field(default_factory=lambda: dict.fromkeys(Op, 0))
    entities_synced: int = 0
    failed: list[FailedEntity] = field(default_factory=list)
    planned: tuple[Call, ...] = ()
    duration: float = 0.0
    run_id: int | None = None
    stopped_early: str = ""

    @property
    def calls_made(self) -> int:
        return sum(self.calls.values())

    @property
    def ok(self) -> bool:
        return not self.failed and not self.stopped_early

    def summary(self) -> str:
        if self.dry_run:
            counts = {op: sum(1 for c in self.planned if c.op is op) for op in Op}
            return (
                f"Dry run: {len(self.planned)} calls planned ({counts[Op.CREATE]} create, "
                f"{counts[Op.UPDATE]} update, {counts[Op.DELETE]} delete); nothing sent"
            )
        text = (
            f"Synced {self.entities_synced} entities with {self.calls_made} calls "
            f"({self.calls[Op.CREATE]} created, {self.calls[Op.UPDATE]} updated, "
            f"{self.calls[Op.DELETE]} deleted); {len(self.failed)} failed "
            f"in {self.duration:.1f} s"
        )
        return f"{text}; {self.stopped_early}" if self.stopped_early else text


@dataclass(frozen=True)
class SyncOptions:
    concurrency: int = 4
    batch_size: int = 500
    max_attempts: int = 5


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
) -> SyncReport:
    """Bring the target in step with the database; raises SyncLocked if a run is under way."""
    options = options or SyncOptions()
    with exclusive_run():
        run = _SyncRunner(
            client=client,
            options=options,
            full=full,
            dry_run=dry_run,
            on_planned=on_planned or (lambda total: None),
            on_progress=on_progress or (lambda n: None),
            on_failure=on_failure or (lambda failed: None),
        )
        return run.execute()


def pending_horizon() -> int:
    """The newest pending event now: a run settles nothing logged after it started."""
    return ModelEvent.objects.pending().aggregate(horizon=Max("id"))["horizon"] or 0


class _SyncRunner:
    def __init__(
        self,
        *,
        client: TargetApiClient,
        options: SyncOptions,
        full: bool,
        dry_run: bool,
        on_planned: Callable[[int], None],
        on_progress: ProgressCallback,
        on_failure: FailureCallback,
    ) -> None:
        self.client = client
        self.options = options
        self.full = full
        self.dry_run = dry_run
        self.on_planned = on_planned
        self.on_progress = on_progress
        self.on_failure = on_failure
        self.report = SyncReport(mode="full" if full else "incremental", dry_run=dry_run)
        # Posts that are not on the target: their comments are held back, not sent to fail.
        self.undelivered_posts: set[int] = set()
        self.stop = threading.Event()
        self.consecutive_unreachable = 0
        self.lock = threading.Lock()

    # --- Run --------------------------------------------------------------------------------------

    def execute(self) -> SyncReport:
        started = time.monotonic()
        self.horizon = pending_horizon()
        run = None
        if not self.dry_run:
            run = SyncRun.objects.create(
                mode=SyncRun.Mode.FULL if self.full else SyncRun.Mode.INCREMENTAL
            )
            self.report.run_id = run.pk
        try:
            if self.full:
                self._run_full()
            else:
                self._run_incremental()
        except BaseException as exc:
            if run is not None:
                self._finish_run(run, started, status=SyncRun.Status.FAILED, error=str(exc))
            raise
        self.report.duration = time.monotonic() - started
        if run is not None:
            status = SyncRun.Status.SUCCEEDED if self.report.ok else SyncRun.Status.PARTIAL
            self._finish_run(run, started, status=status)
        return self.report

    def _finish_run(self, run: SyncRun, started: float, *, status: str, error: str = "") -> None:
        lines = [str(failed) for failed in self.report.failed[:ERROR_SUMMARY_LINES]]
        if len(self.report.failed) > ERROR_SUMMARY_LINES:
            lines.append(f"... and {len(self.report.failed) - ERROR_SUMMARY_LINES} more")
        if self.report.stopped_early:
            lines.insert(0, self.report.stopped_early)
        if error:
            lines.insert(0, error)
        run.status = status
        run.finished_at = timezone.now()
        run.events_pending = self.report.events_pending
        run.calls_created = self.report.calls[Op.CREATE]
        run.calls_updated = self.report.calls[Op.UPDATE]
        run.calls_deleted = self.report.calls[Op.DELETE]
        run.entities_synced = self.report.entities_synced
        run.entities_failed = len(self.report.failed)
        run.error_summary = "\n".join(lines)
        run.save()

    def _run_incremental(self) -> None:
        events = [
            Event(event_id, EntityKey(KINDS[table], pk), EventType(kind))
            for event_id, table, pk, kind in ModelEvent.objects.pending()
            .filter(id__lte=self.horizon, entity_table__in=KINDS)
            .order_by("id")
            .values_list("id", "entity_table", "entity_pk", "type")
            .iterator(chunk_size=5000)
        ]
        self.report.events_pending = len(events)
        states = self._states_with_flags()
        events = self._without_parked(events, states)
        maybe_on_target = frozenset(
            key for key, state in states.items() if state.create_unconfirmed
        )
        plan = plan_calls(events, maybe_on_target=maybe_on_target)
        self.report.planned = plan.calls
        if self.dry_run:
            return
        if plan.settled_event_ids:
            self._mark_synced(plan.settled_event_ids)
            settled = set(plan.settled_event_ids)
            gone = {e.key for e in events if e.id in settled}
            self.report.entities_synced += len(gone)
            # Created and deleted again: a failure recorded for them is no longer anyone's concern.
            for kind in Kind:
                if pks := [key.pk for key in gone if key.kind is kind]:
                    EntitySyncState.objects.filter(
                        entity_table=TABLES[kind], entity_pk__in=pks
                    ).delete()
        self._deliver_plan(plan, self._incremental_deliveries)

    def _run_full(self) -> None:
        # The events this run may settle are read before the database rows: an event committed
        # later (even under an older id) may describe a change the rows below do not show yet.
        pending = list(
            ModelEvent.objects.pending()
            .filter(id__lte=self.horizon, entity_table__in=KINDS)
            .values_list("id", "entity_table", "entity_pk")
        )
        remote_ids = {
            (KINDS[table], pk): remote_id
            for table, pk, remote_id in EntitySyncState.objects.filter(
                remote_id__isnull=False
            ).values_list("entity_table", "entity_pk", "remote_id")
        }
        local_of_remote: dict[EntityKey, int] = {}
        local: dict[EntityKey, dict[str, Any]] = {}
        for kind, model in MODELS.items():
            for obj in model.objects.order_by("pk").iterator(chunk_size=5000):
                remote_id = remote_ids.get((kind, obj.pk), obj.pk)
                key = EntityKey(kind, remote_id)
                local_of_remote[key] = obj.pk
                local[key] = _payload(obj, remote_id, remote_ids)
        remote: dict[EntityKey, dict[str, Any]] = {}
        for kind in Kind:
            for record in self.client.list(kind.resource):
                if isinstance(record.get("id"), int):
                    remote[EntityKey(kind, record["id"])] = record
        plan = plan_full(local, remote)
        self.report.events_pending = (
            ModelEvent.objects.pending().filter(id__lte=self.horizon).count()
        )
        self.report.planned = plan.calls
        if self.dry_run:
            return

        def deliveries(calls: tuple[Call, ...]) -> Iterator[Delivery | Outcome]:
            for call in calls:
                pk = local_of_remote.get(call.key)
                entity = EntityKey(call.key.kind, pk if pk is not None else call.key.pk)
                payload = local.get(call.key)
                held = self._held_back(call, payload)
                if held is not None:
                    yield Outcome(Delivery(call, entity, call.key.pk), ok=False, error=held)
                    continue
                yield Delivery(call, entity, call.key.pk, payload)

        failed_before = len(self.report.failed)
        self._deliver_plan(plan, deliveries)
        # Every event read above is now reflected on the target, except those of entities whose
        # call failed: they stay pending for the next run.
        failed = {f.entity for f in self.report.failed[failed_before:]}
        settle = [eid for eid, table, pk in pending if EntityKey(KINDS[table], pk) not in failed]
        for chunk in chunked(settle, 5000):
            self._mark_synced(chunk)

    # --- Planning helpers -------------------------------------------------------------------------

    def _states_with_flags(self) -> dict[EntityKey, EntitySyncState]:
        """Entities with an unconfirmed create or a parked failure (both rare)."""
        rows = EntitySyncState.objects.filter(
            Q(create_unconfirmed=True) | Q(parked_at__isnull=False), entity_table__in=KINDS
        )
        return {EntityKey(KINDS[s.entity_table], s.entity_pk): s for s in rows}

    def _without_parked(
        self, events: list[Event], states: dict[EntityKey, EntitySyncState]
    ) -> list[Event]:
        """Leave out parked entities, unless they changed since they were parked."""
        parked = {key: s for key, s in states.items() if s.parked_at is not None}
        if not parked:
            return events
        newest: dict[EntityKey, int] = {}
        firsts: dict[EntityKey, EventType] = {}
        for event in events:
            newest[event.key] = event.id
            firsts.setdefault(event.key, event.type)
        retry = [k for k, s in parked.items() if newest.get(k, 0) > (s.parked_event_id or 0)]
        if retry and not self.dry_run:
            for key in retry:
                EntitySyncState.objects.filter(pk=parked[key].pk).update(
                    parked_at=None, parked_event_id=None, attempts=0
                )
        skipped = set(parked) - set(retry)
        for key in skipped:
            if key.kind is Kind.POST and firsts.get(key) is EventType.CREATED:
                self.undelivered_posts.add(key.pk)
            if key in newest:
                failed = FailedEntity(key, f"{key}", "parked after repeated failures", True)
                self.report.failed.append(failed)
                self.on_failure(failed)
        return [event for event in events if event.key not in skipped]

    def _held_back(self, call: Call, payload: dict[str, Any] | None) -> str | None:
        if (
            call.key.kind is Kind.COMMENT
            and call.op is not Op.DELETE
            and payload is not None
            and payload["postId"] in self.undelivered_posts
        ):
            return f"held back: post {payload['postId']} is not on the target"
        return None

    # --- Loading payloads -------------------------------------------------------------------------

    def _incremental_deliveries(self, calls: tuple[Call, ...]) -> Iterator[Delivery | Outcome]:
        """Deliveries for one batch of one phase: a bounded number of queries, none per object."""
        kind = calls[0].key.kind
        pks = [call.key.pk for call in calls]
        states = {
            s.entity_pk: s
            for s in EntitySyncState.objects.filter(entity_table=TABLES[kind], entity_pk__in=pks)
        }
        remote_ids = {(kind, pk): s.remote_id for pk, s in states.items() if s.remote_id}
        objects: dict[int, Any] = {}
        if calls[0].op is not Op.DELETE:
            objects = MODELS[kind].objects.in_bulk(pks)
            if kind is Kind.COMMENT:
                post_pks = {obj.post_id for obj in objects.values()}
                remote_ids.update(
                    ((Kind.POST, pk), remote_id)
                    for pk, remote_id in EntitySyncState.objects.filter(
                        entity_table=TABLES[Kind.POST],
                        entity_pk__in=post_pks,
                        remote_id__isnull=False,
                    ).values_list("entity_pk", "remote_id")
                )
        creates = [call.key.pk for call in calls if call.op is Op.CREATE and call.key.pk in objects]
        if creates:
            self._flag_creates(kind, creates)

        for call in calls:
            state = states.get(call.key.pk)
            remote_id = remote_ids.get((kind, call.key.pk), call.key.pk)
            if call.op is Op.DELETE:
                yield Delivery(call, call.key, remote_id)
                continue
            obj = objects.get(call.key.pk)
            if obj is None:
                # Deleted after this run started: its DELETED event is for the next run, which
                # merges it with these events.
                continue
            payload = _payload(obj, call.key.pk if call.op is Op.CREATE else remote_id, remote_ids)
            held = self._held_back(call, payload)
            if held is not None:
                yield Outcome(Delivery(call, call.key, remote_id), ok=False, error=held)
                continue
            check_first = bool(state and state.create_unconfirmed)
            yield Delivery(call, call.key, remote_id, payload, check_first)

    def _flag_creates(self, kind: Kind, pks: list[int]) -> None:
        """Commit "a create may be on its way" before sending, for the next run to check."""
        _upsert_states(
            [
                EntitySyncState(entity_table=TABLES[kind], entity_pk=pk, create_unconfirmed=True)
                for pk in pks
            ],
            ["create_unconfirmed"],
        )

    # --- Sending ----------------------------------------------------------------------------------

    def _deliver_plan(
        self,
        plan: Plan,
        deliveries: Callable[[tuple[Call, ...]], Iterable[Delivery | Outcome]],
    ) -> None:
        self.on_planned(len(plan.calls))
        recorder = _Recorder(self)
        with ThreadPoolExecutor(max_workers=self.options.concurrency) as pool:
            for _phase, calls in plan.by_phase():
                for batch in chunked(calls, self.options.batch_size):
                    if self.stop.is_set():
                        self._not_sent(batch)
                        continue
                    in_flight: set[Future[Outcome]] = set()
                    for item in deliveries(tuple(batch)):
                        if isinstance(item, Outcome):
                            recorder.add(item)
                            continue
                        in_flight.add(pool.submit(self._send, item))
                        # Keep a bounded queue so results are recorded while calls are sent.
                        if len(in_flight) >= self.options.concurrency * 4:
                            done, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                            for future in done:
                                recorder.add(future.result())
                            recorder.flush_if_due()
                    while in_flight:
                        done, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                        for future in done:
                            recorder.add(future.result())
                        recorder.flush_if_due()
                    recorder.flush()
        recorder.flush()

    def _not_sent(self, calls: Iterable[Call]) -> None:
        for call in calls:
            self.report.failed.append(
                FailedEntity(call.key, str(call), "not sent: target unreachable", False)
            )

    def _send(self, delivery: Delivery) -> Outcome:
        """Runs in a worker thread: HTTP only, no database."""
        if self.stop.is_set():
            return Outcome(delivery, ok=False, error="not sent: target unreachable", sent=False)
        call, resource = delivery.call, delivery.call.key.kind.resource
        try:
            if call.op is Op.DELETE:
                self.client.delete(resource, delivery.remote_id)
                remote_id = delivery.remote_id
            elif call.op is Op.UPDATE:
                remote_id = self._update(resource, delivery)
            else:
                remote_id = self._create(resource, delivery)
        except TargetApiError as exc:
            self._count_unreachable(exc)
            return Outcome(delivery, ok=False, error=str(exc), permanent=not exc.transient)
        self._count_unreachable(None)
        return Outcome(delivery, ok=True, remote_id=remote_id)

    def _create(self, resource: str, delivery: Delivery) -> int:
        payload = delivery.payload or {}
        if delivery.check_first and self.client.get(resource, payload["id"]) is not None:
            # An earlier run's POST landed without us hearing of it: update that record instead.
            self.client.update(resource, payload["id"], payload)
            return payload["id"]
        answer = self.client.create(resource, payload)
        return _remote_id(answer, payload["id"])

    def _update(self, resource: str, delivery: Delivery) -> int:
        payload = delivery.payload or {}
        if self.client.update(resource, delivery.remote_id, payload) is not None:
            return delivery.remote_id
        # The target lost it (404): create it again under our own id.
        assert delivery.entity is not None
        payload = {**payload, "id": delivery.entity.pk}
        return _remote_id(self.client.create(resource, payload), payload["id"])

    def _count_unreachable(self, exc: TargetApiError | None) -> None:
        with self.lock:
            if exc is None or exc.status is not None:
                self.consecutive_unreachable = 0
                return
            self.consecutive_unreachable += 1
            if self.consecutive_unreachable >= CIRCUIT_BREAKER_THRESHOLD and not self.stop.is_set():
                self.report.stopped_early = (
                    f"stopped after {self.consecutive_unreachable} calls in a row found the "
                    "target unreachable"
                )
                self.stop.set()

    def _mark_synced(self, event_ids: Iterable[int]) -> None:
        ModelEvent.objects.filter(id__in=list(event_ids), synced_at__isnull=True).update(
            synced_at=timezone.now()
        )


class _Recorder:
    """Collects outcomes in the main thread and writes them to the database in small batches."""

    def __init__(self, runner: _SyncRunner) -> None:
        self.runner = runner
        self.outcomes: list[Outcome] = []
        self.last_flush = time.monotonic()

    def add(self, outcome: Outcome) -> None:
        report = self.runner.report
        call = outcome.delivery.call
        if outcome.ok:
            report.calls[call.op] += 1
            report.entities_synced += 1
        else:
            entity = outcome.delivery.entity or call.key
            failed = FailedEntity(entity, str(call), outcome.error, outcome.permanent)
            report.failed.append(failed)
            self.runner.on_failure(failed)
            if call.key.kind is Kind.POST and call.op is Op.CREATE:
                self.runner.undelivered_posts.add(entity.pk)
        self.runner.on_progress(1)
        if outcome.sent:
            self.outcomes.append(outcome)

    def flush_if_due(self) -> None:
        due = time.monotonic() - self.last_flush >= FLUSH_EVERY_SECONDS
        if len(self.outcomes) >= FLUSH_EVERY_RESULTS or (self.outcomes and due):
            self.flush()

    def flush(self) -> None:
        outcomes, self.outcomes = self.outcomes, []
        self.last_flush = time.monotonic()
        if not outcomes:
            return
        with transaction.atomic():
            self._write(outcomes)

    def _write(self, outcomes: list[Outcome]) -> None:
        now = timezone.now()
        synced_events: list[int] = []
        forget: dict[str, list[int]] = {}
        keep: list[EntitySyncState] = []
        failures: list[Outcome] = []
        for outcome in outcomes:
            entity = outcome.delivery.entity
            if entity is None:
                continue
            table = TABLES[entity.kind]
            if not outcome.ok:
                failures.append(outcome)
                continue
            synced_events.extend(outcome.delivery.call.event_ids)
            if outcome.delivery.call.op is Op.DELETE or outcome.remote_id in (None, entity.pk):
                forget.setdefault(table, []).append(entity.pk)
            else:
                keep.append(
                    EntitySyncState(
                        entity_table=table, entity_pk=entity.pk, remote_id=outcome.remote_id
                    )
                )
        if synced_events:
            self.runner._mark_synced(synced_events)
        for table, pks in forget.items():
            EntitySyncState.objects.filter(entity_table=table, entity_pk__in=pks).delete()
        if keep:
            # A delivered entity starts afresh: only its remote id is worth keeping.
            _upsert_states(keep, ["remote_id", *FAILURE_FIELDS])
        if failures:
            self._record_failures(failures, now)

    def _record_failures(self, failures: list[Outcome], now) -> None:
        max_attempts = self.runner.options.max_attempts
        by_table: dict[str, dict[int, Outcome]] = {}
        for outcome in failures:
            entity = outcome.delivery.entity
            assert entity is not None
            by_table.setdefault(TABLES[entity.kind], {})[entity.pk] = outcome
        for table, outcomes in by_table.items():
            existing = {
                s.entity_pk: s
                for s in EntitySyncState.objects.filter(entity_table=table, entity_pk__in=outcomes)
            }
            rows = []
            for pk, outcome in outcomes.items():
                state = existing.get(pk) or EntitySyncState(entity_table=table, entity_pk=pk)
                state.last_error = outcome.error[:2000]
                state.last_failed_at = now
                if outcome.permanent:
                    # The target answered, so a create it refused is not waiting there.
                    state.create_unconfirmed = False
                    # Only answers that will not change by waiting count towards parking.
                    state.attempts += 1
                    if state.attempts >= max_attempts:
                        state.parked_at = now
                        state.parked_event_id = max(outcome.delivery.call.event_ids, default=0)
                rows.append(state)
            _upsert_states(rows, FAILURE_FIELDS)


# What a failed call records about an entity, and a delivered one resets.
FAILURE_FIELDS = [
    "create_unconfirmed",
    "attempts",
    "last_error",
    "last_failed_at",
    "parked_at",
    "parked_event_id",
    "updated_at",
]


def _upsert_states(rows: list[EntitySyncState], fields: list[str]) -> None:
    """Insert these entity states, or overwrite `fields` of the ones that exist."""
    EntitySyncState.objects.bulk_create(
        rows,
        update_conflicts=True,
        unique_fields=["entity_table", "entity_pk"],
        update_fields=fields,
    )


def _payload(obj: Any, remote_id: int, remote_ids: dict[tuple[Kind, int], int]) -> dict[str, Any]:
    """The target's shape of a post or comment (camelCase, the target's ids)."""
    if isinstance(obj, Post):
        return {"id": remote_id, "userId": obj.user_id, "title": obj.title, "body": obj.body}
    return {
        "id": remote_id,
        "postId": remote_ids.get((Kind.POST, obj.post_id), obj.post_id),
        "name": obj.name,
        "email": obj.email,
        "body": obj.body,
    }


def _remote_id(answer: dict[str, Any], sent_id: int) -> int:
    remote_id = answer.get("id")
    return remote_id if isinstance(remote_id, int) else sent_id
