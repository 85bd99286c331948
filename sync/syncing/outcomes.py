"""Writing what came of the calls: settled events, what the target holds, failures and parking.

Each write is one short transaction, so a run killed at any moment keeps what it recorded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import cast

from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from sync.errors import REFUSED_CREDENTIALS, error_class
from sync.models import EntitySyncState, ModelEvent, SyncRun, SyncTarget, SyncVerification
from sync.planner import EntityKey, Kind, Op
from sync.syncing.deliveries import Action, Delivery, Outcome, Result, TargetTraits
from sync.syncing.report import FailedEntity, SyncReport
from sync.target import (
    TABLES,
    Record,
    RemoteId,
    parent_remote_key,
    readable_id,
    record_hash,
    remote_key,
)

# What a failed call records about an entity, and a delivered one resets.
FAILURE_FIELDS = [
    "attempts",
    "last_error",
    "last_status",
    "error_class",
    "last_failed_at",
    "parked_at",
    "parked_event_id",
    "updated_at",
]
# What a state says the target holds of its entity.
HELD_FIELDS = [
    "remote_id",
    "remote_key",
    "delivered_hash",
    "acknowledged_hash",
    "remote_parent_key",
    "create_unconfirmed",
    "unconfirmed_record",
    "unconfirmed_run",
]
DELIVERED_FIELDS = [*HELD_FIELDS, *FAILURE_FIELDS]


def upsert_states(rows: list[EntitySyncState], fields: list[str]) -> None:
    """Insert these entity states, or overwrite `fields` of the ones that exist."""
    if rows:
        EntitySyncState.objects.bulk_create(
            rows,
            update_conflicts=True,
            unique_fields=["entity_table", "entity_pk"],
            update_fields=fields,
        )


def mark_synced(event_ids: Iterable[int]) -> None:
    ids = list(event_ids)
    for start in range(0, len(ids), 5000):
        ModelEvent.objects.filter(id__in=ids[start : start + 5000], synced_at__isnull=True).update(
            synced_at=timezone.now()
        )


def forget(keys: Iterable[EntityKey]) -> None:
    """The target holds nothing of these entities any more."""
    by_table: dict[str, list[int]] = {}
    for key in keys:
        by_table.setdefault(TABLES[key.kind], []).append(key.pk)
    for table, pks in by_table.items():
        EntitySyncState.objects.filter(entity_table=table, entity_pk__in=pks).delete()


def settle_without_call(
    states: list[EntitySyncState], *, gone: Iterable[EntityKey], event_ids: Iterable[int]
) -> None:
    """What the target is seen to hold already, in one transaction: these states recorded, the
    entities `gone` forgotten (the target holds nothing of them), the events settled."""
    with transaction.atomic():
        upsert_states(states, DELIVERED_FIELDS)
        forget(gone)
        mark_synced(event_ids)


def delivered_state(
    key: EntityKey, record: Record, acknowledged: Record | None = None
) -> EntitySyncState:
    """The state of an entity the target holds as `record` (under its remote id); `acknowledged`
    is what the target said it stored, when that differs from what was sent."""
    remote_id = readable_id(record["id"])
    assert remote_id is not None, f"{key}: no usable remote id in {record!r}"
    stored = {**acknowledged, "id": remote_id} if acknowledged is not None else None
    hashed = record_hash(record)
    return EntitySyncState(
        entity_table=TABLES[key.kind],
        entity_pk=key.pk,
        remote_id=remote_id,
        remote_key=remote_key(remote_id),
        delivered_hash=hashed,
        acknowledged_hash=""
        if stored is None or record_hash(stored) == hashed
        else record_hash(stored),
        remote_parent_key=parent_remote_key(record),
        create_unconfirmed=False,
        unconfirmed_record=None,
        unconfirmed_run=None,
    )


def forget_delivered(deliveries: Iterable[Delivery]) -> None:
    """Before a PUT: what the target holds is unknown until it answers, so forget the hashes
    (an edit reverted later must be sent again) and the parent (no cascade is assumed)."""
    by_table: dict[str, list[int]] = {}
    for d in deliveries:
        by_table.setdefault(TABLES[d.entity.kind], []).append(d.entity.pk)
    for table, pks in by_table.items():
        EntitySyncState.objects.filter(entity_table=table, entity_pk__in=pks).update(
            delivered_hash="", acknowledged_hash="", remote_parent_key=None
        )


def adopt(deliveries: Iterable[Delivery]) -> None:
    """Before a PUT that makes a found record ours: the entity holds that record from now on,
    with nothing known of its content (the PUT may land unanswered, its content then found by
    no lookup: the next run sends the entity's PUT there again, never a create)."""
    upsert_states(
        [
            EntitySyncState(
                entity_table=TABLES[d.entity.kind],
                entity_pk=d.entity.pk,
                remote_id=readable_id(d.remote_id),
                remote_key=remote_key(cast(RemoteId, d.remote_id)),  # a PUT has one
                delivered_hash="",
                acknowledged_hash="",
                remote_parent_key=None,
                create_unconfirmed=False,
                unconfirmed_record=None,
                unconfirmed_run=None,
            )
            for d in deliveries
        ],
        [*HELD_FIELDS, "updated_at"],
    )


def flag_creates(deliveries: Iterable[Delivery], *, run_id: int | None) -> None:
    """Commit "this POST may land" before it is sent, with the record and the run that sends
    it, for the next run to find."""
    upsert_states(
        [
            EntitySyncState(
                entity_table=TABLES[d.entity.kind],
                entity_pk=d.entity.pk,
                remote_id=None,
                remote_key=None,
                delivered_hash="",
                acknowledged_hash="",
                create_unconfirmed=True,
                unconfirmed_record=d.record,
                unconfirmed_run=run_id,
            )
            for d in deliveries
        ],
        [
            "remote_id",
            "remote_key",
            "delivered_hash",
            "acknowledged_hash",
            "create_unconfirmed",
            "unconfirmed_record",
            "unconfirmed_run",
            "updated_at",
        ],
    )


def start_run(
    *, full: bool, target: str, unfinished: Iterable[int], timeout: float | None = None
) -> int:
    """Record a run as started, with its calls' `timeout`; the runs still recorded as running
    (`unfinished`, read under the run lock) ended without finishing: they are abandoned, ended
    now as far as anyone knows."""
    SyncRun.objects.filter(pk__in=list(unfinished), status=SyncRun.Status.RUNNING).update(
        status=SyncRun.Status.ABANDONED,
        finished_at=timezone.now(),
        error_summary="abandoned: its process ended without finishing it (found by a later run)",
    )
    mode = SyncRun.Mode.FULL if full else SyncRun.Mode.INCREMENTAL
    return SyncRun.objects.create(mode=mode, target=target, timeout=timeout).pk


def finish_run(
    run_id: int, report: SyncReport, *, status: str, summary: list[str], lock_lost: bool
) -> None:
    """Record how a run ended: its status, its counts and the first lines of what went wrong.

    After a lost lock the session that held it is gone: the end is recorded on a new one, if
    the database answers at all.
    """
    if lock_lost:
        connection.close()
    try:
        _finish_run(run_id, report, status=status, summary=summary)
    except DatabaseError:
        if not lock_lost:
            raise


def _finish_run(run_id: int, report: SyncReport, *, status: str, summary: list[str]) -> None:
    SyncRun.objects.filter(pk=run_id).update(
        status=status,
        finished_at=timezone.now(),
        events_pending=report.events_pending,
        calls_created=report.calls[Op.CREATE],
        calls_updated=report.calls[Op.UPDATE],
        calls_deleted=report.calls[Op.DELETE],
        calls_failed_created=report.failed_calls[Op.CREATE],
        calls_failed_updated=report.failed_calls[Op.UPDATE],
        calls_failed_deleted=report.failed_calls[Op.DELETE],
        entities_synced=report.entities_synced,
        entities_unchanged=report.entities_unchanged,
        entities_failed=len(report.failed),
        error_summary="\n".join(summary),
    )


def unpark(keys: Iterable[EntityKey]) -> None:
    """These parked entities changed since: their next call is sent, their count starts again."""
    by_table: dict[str, list[int]] = {}
    for key in keys:
        by_table.setdefault(TABLES[key.kind], []).append(key.pk)
    for table, pks in by_table.items():
        EntitySyncState.objects.filter(entity_table=table, entity_pk__in=pks).update(
            parked_at=None, parked_event_id=None, attempts=0
        )


def record_verification(
    *, target: str, counts: dict, differences: list[dict], awaiting: int
) -> int:
    """Keep what a verification found, for sync_status and /metrics."""
    total = sum(sum(by_what.values()) for by_what in counts.values())
    return SyncVerification.objects.create(
        target=target,
        finished_at=timezone.now(),
        equal=total == 0,
        counts=counts,
        differences=differences,
        awaiting=awaiting,
    ).pk


def adopt_target(url: str, *, complete: bool = True) -> None:
    """From now on the sync state describes the target at `url`; in part while not `complete`."""
    SyncTarget.adopt(url, complete=complete)


def target_complete(url: str, traits: TargetTraits) -> None:
    """A full run to `url` went through: the sync state describes it whole."""
    SyncTarget.objects.filter(url=url).update(
        complete=True, rewrites=traits.rewrites_json(), keeps_ids=traits.keeps_ids
    )


def save_pace(url: str, rate: float) -> None:
    """The rate of calls the run settled on (0: as fast as allowed), for the next run to start
    from and for monitoring."""
    SyncTarget.objects.filter(url=url).update(rate=rate)


def save_traits(traits: TargetTraits) -> None:
    """Remember what the target was seen to do, for later runs' lookups and comparisons."""
    SyncTarget.objects.update(rewrites=traits.rewrites_json(), keeps_ids=traits.keeps_ids)


class OutcomeWriter:
    """Records outcomes in the main thread and keeps the report's counts."""

    def __init__(
        self,
        *,
        report: SyncReport,
        max_attempts: int,
        on_failure: Callable[[FailedEntity], None],
    ) -> None:
        self.report = report
        self.max_attempts = max_attempts
        self.on_failure = on_failure
        self.server_errors: dict[EntityKey, Outcome] = {}
        # Posts not on the target: their new comments are held back, not sent to fail.
        self.undelivered_posts: set[int] = set()

    def skipped(self, failures: list[FailedEntity]) -> None:
        """Entities this run leaves out (parked): reported as failed, nothing recorded."""
        for failed in failures:
            self.report.failed.append(failed)
            self.on_failure(failed)

    def write(self, outcomes: list[Outcome]) -> None:
        if not outcomes:
            return
        ours = [o for o in outcomes if not o.delivery.foreign]
        with transaction.atomic():
            done, conflicts = self._without_conflicts([o for o in ours if o.ok])
            mark_synced(event_id for o in done for event_id in o.delivery.call.event_ids)
            kept = [
                delivered_state(o.delivery.entity, o.record, o.acknowledged)
                for o in done
                if o.record
            ]
            upsert_states(kept, DELIVERED_FIELDS)
            forget(
                key
                for o in done
                if o.record is None
                for key in (o.delivery.entity, *o.delivery.call.covers)
            )
            failures = [o for o in ours if o.result is Result.FAILED] + conflicts
            self._record_failures(failures, timezone.now())
        done += [o for o in outcomes if o.delivery.foreign and o.ok]
        failures += [o for o in outcomes if o.delivery.foreign and o.result is Result.FAILED]
        for outcome in done:
            call = outcome.delivery.call
            self.report.entities_synced += 1 + len(call.covers)
            if not outcome.no_call:
                self.report.calls[outcome.delivery.op] += 1
            elif outcome.record is not None:
                # The target already held exactly this record. (No call and no record: the
                # entity was never there and must not be, like one created and deleted.)
                self.report.entities_unchanged += 1
        for outcome in failures:
            entity = outcome.delivery.entity
            if _wrote(outcome):
                self.report.failed_calls[outcome.delivery.op] += 1
            if entity.kind is Kind.POST and outcome.delivery.call.op is Op.CREATE:
                self.undelivered_posts.add(entity.pk)
            failed = FailedEntity(
                outcome.delivery.entity,
                _named(outcome.delivery),
                outcome.error,
                outcome.permanent,
            )
            self.report.failed.append(failed)
            self.on_failure(failed)

    def _without_conflicts(self, done: list[Outcome]) -> tuple[list[Outcome], list[Outcome]]:
        """Outcomes whose record another entity holds become failures: the mapping is 1:1."""
        holders: dict[tuple[str, str], int] = {}
        for kind in {o.delivery.entity.kind for o in done if o.record}:
            keys = [
                remote_key(o.remote_id)
                for o in done
                if o.record and o.delivery.entity.kind is kind and o.remote_id is not None
            ]
            rows = EntitySyncState.objects.filter(
                entity_table=TABLES[kind], remote_key__in=keys
            ).values_list("remote_key", "entity_pk")
            holders.update(((TABLES[kind], key), pk) for key, pk in rows)
        kept, conflicts = [], []
        for outcome in done:
            entity = outcome.delivery.entity
            if outcome.record is None:
                kept.append(outcome)
                continue
            # An outcome with a record has the record's id, or the one its call was sent to.
            slot = (TABLES[entity.kind], remote_key(cast(RemoteId, outcome.remote_id)))
            holder = holders.setdefault(slot, entity.pk)
            if holder == entity.pk:
                kept.append(outcome)
                continue
            conflicts.append(
                Outcome(
                    outcome.delivery,
                    Result.FAILED,
                    error=(
                        f"target conflict: the target answered with id {outcome.remote_id}, "
                        f"which {entity.kind.value} {holder} holds; not stored"
                    ),
                    http_status=outcome.http_status,
                    permanent=True,
                )
            )
        if conflicts:
            self.report.notice(
                "The target answered creates with ids that other entities already hold: it does "
                "not keep what it is sent (the public JSONPlaceholder stores nothing) or reuses "
                "ids. Those entities were not mapped; see sync_status."
            )
        return kept, conflicts

    def _record_failures(self, failures: list[Outcome], now: datetime) -> None:
        by_table: dict[str, dict[int, Outcome]] = {}
        for outcome in failures:
            entity = outcome.delivery.entity
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
                state.last_status = outcome.http_status
                state.error_class = error_class(outcome.error)
                state.last_failed_at = now
                # A create the target refused (not one it answered without an id: that one
                # landed, and is looked for again).
                refused_create = (
                    outcome.delivery.action is Action.POST
                    and (outcome.permanent or outcome.http_status in REFUSED_CREDENTIALS)
                    and not outcome.delivery.landed
                )
                never_sent = outcome.delivery.first_post and not outcome.sent
                if never_sent or (refused_create and outcome.delivery.call.op is Op.CREATE):
                    # The target answered, so a create it refused is not waiting there; a
                    # first create never sent cannot be there either.
                    state.create_unconfirmed = False
                    state.unconfirmed_record = None
                    state.unconfirmed_run = None
                if outcome.permanent:
                    self._count_attempt(state, outcome, now)
                elif (
                    _maybe_the_whole_targets(outcome.http_status)
                    and outcome.delivery.action is not Action.FIND
                ):
                    # A failed lookup says nothing about the entity's own writes.
                    self.server_errors[outcome.delivery.entity] = outcome
                rows.append(state)
            upsert_states(
                rows,
                ["create_unconfirmed", "unconfirmed_record", "unconfirmed_run", *FAILURE_FIELDS],
            )

    def _count_attempt(self, state: EntitySyncState, outcome: Outcome, now: datetime) -> None:
        """One more run in a row that failed; parked once it reaches the limit."""
        state.attempts += 1
        if state.attempts >= self.max_attempts:
            state.parked_at = now
            state.parked_event_id = max(outcome.delivery.call.event_ids, default=0)

    def count_server_errors(self, *, refusals: bool) -> None:
        """5xx answers count towards parking, once the run knows the target answered others;
        credentials refused, with `refusals`: once it knows the target carried out other
        writes."""
        if not refusals:
            self.server_errors = {
                key: outcome
                for key, outcome in self.server_errors.items()
                if outcome.http_status not in REFUSED_CREDENTIALS
            }
        if not self.server_errors:
            return
        now = timezone.now()
        with transaction.atomic():
            for table in {TABLES[key.kind] for key in self.server_errors}:
                outcomes = {
                    k.pk: o for k, o in self.server_errors.items() if TABLES[k.kind] == table
                }
                states = list(
                    EntitySyncState.objects.filter(entity_table=table, entity_pk__in=outcomes)
                )
                for state in states:
                    self._count_attempt(state, outcomes[state.entity_pk], now)
                upsert_states(states, FAILURE_FIELDS)
        self.server_errors.clear()


def _maybe_the_whole_targets(status: int | None) -> bool:
    """A failure that may be the whole target's rather than the entity's: a server error, or
    credentials refused (count_server_errors says when they are the entity's)."""
    return status is not None and (status >= 500 or status in REFUSED_CREDENTIALS)


def _wrote(outcome: Outcome) -> bool:
    """A write went out for this call in this run (a lookup alone is no call)."""
    delivery = outcome.delivery
    return outcome.sent and (delivery.action is not Action.FIND or delivery.wrote)


def _named(delivery: Delivery) -> str:
    """A failed call as its FAILED line names it: by its entity, or, for a record of the target
    no entity of ours holds (its key is no row's), by the record's path."""
    if delivery.foreign:
        path = f"/{delivery.resource}/{delivery.remote_id}"
        return f"{delivery.call.op.method} {path} (not in the database)"
    return str(delivery.call)
