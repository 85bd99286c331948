"""An incremental run: the pending events, merged into the fewest calls, and their first steps."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from django.db import transaction

from sync.models import EntitySyncState
from sync.planner import Call, EntityKey, Event, EventType, Kind, Op, plan_calls
from sync.syncing import loading, outcomes
from sync.syncing.deliveries import Action, Delivery, Followups, Outcome, Result
from sync.syncing.report import FailedEntity, PlannedCall
from sync.target import TABLES, RemoteId, record_hash, remote_key

if TYPE_CHECKING:
    from sync.syncing.run import Runner


def run(runner: Runner) -> None:
    report = runner.report
    events = loading.pending_events(loading.pending_horizon())
    report.events_pending = len(events)
    facts = loading.facts_of({event.key for event in events})
    events = _without_parked(runner, events, facts)
    presence = {key: f.presence for key, f in facts.items() if f.presence is not None}
    plan = plan_calls(
        events,
        presence=presence,
        parents=_parents(facts),
        cascade_deletes=runner.options.cascade_deletes,
    )
    report.planned = tuple(
        PlannedCall(call, _remote_id(call.key, facts.get(call.key))) for call in plan.calls
    )
    if runner.dry_run:
        return
    if plan.settled_event_ids:
        # Created and deleted again between two runs: nothing to send, nothing to remember.
        settled = set(plan.settled_event_ids)
        gone = {event.key for event in events if event.id in settled}
        with transaction.atomic():
            outcomes.mark_synced(plan.settled_event_ids)
            outcomes.forget(gone)
        report.entities_synced += len(gone)
    runner.deliver(plan, lambda calls: first_steps(runner, calls))


def first_steps(runner: Runner, calls: tuple[Call, ...]) -> Followups:
    """The first step of each call of one batch (one kind, one operation): a few queries."""
    kind, op = calls[0].key.kind, calls[0].op
    batch = loading.load_batch(
        kind,
        [call.key.pk for call in calls],
        rows=op is not Op.DELETE,
        settle_time=runner.client.timeout,
    )
    steps = Followups()
    gone = [c.key.pk for c in calls if op is not Op.DELETE and c.key.pk not in batch.rows]
    # Its pending events, newer ones included: the row is gone, whatever order they say.
    events_of_gone = loading.pending_event_ids(kind, gone) if gone else {}
    for call in calls:
        state = batch.states.get(call.key.pk)
        until = _monotonic(batch.may_land_until.get(call.key.pk, 0.0))
        if call.key.pk in events_of_gone:
            gone = _gone_step(call, state, events_of_gone[call.key.pk], steps, until)
            steps.deliveries.extend(gone)
            continue
        if op is Op.DELETE:
            steps.deliveries.append(_delete_step(call, state, until))
            continue
        remote_id = _remote_id(call.key, state)
        record = batch.record(call.key.pk, remote_id)
        post_pk = batch.rows[call.key.pk].post_id if kind is Kind.COMMENT else None
        if post_pk in runner.writer.undelivered_posts:
            error = f"held back: post {post_pk} is not on the target"
            steps.outcomes.append(
                Outcome(Delivery(call, Action.POST), Result.FAILED, error=error, sent=False)
            )
        elif op is Op.UPDATE:
            if state is not None and state.delivered_hash == record_hash(record):
                # The target already holds exactly this record: no call.
                steps.outcomes.append(
                    Outcome(
                        Delivery(call, Action.PUT, remote_id, record),
                        Result.DONE,
                        record=record,
                        sent=False,
                        no_call=True,
                    )
                )
            else:
                steps.deliveries.append(Delivery(call, Action.PUT, remote_id, record))
        elif state is not None and state.create_unconfirmed:
            # An earlier POST may have landed: look for it (as sent, and as it is now) first.
            lookups = tuple(r for r in (state.unconfirmed_record, record) if r)
            steps.deliveries.append(
                Delivery(call, Action.FIND, record=record, lookups=lookups, may_land_until=until)
            )
        else:
            steps.deliveries.append(Delivery(call, Action.POST, record=record, first_post=True))
    return steps


def _monotonic(unix_time: float) -> float:
    """A moment given as time.time() on the time.monotonic() clock the run measures with."""
    if unix_time in (0.0, float("inf")):
        return unix_time
    return time.monotonic() + (unix_time - time.time())


def _gone_step(
    call: Call,
    state: EntitySyncState | None,
    event_ids: list[int],
    steps: Followups,
    may_land_until: float,
) -> list[Delivery]:
    """A create or update whose row is gone: deleted since (an update can even be logged after
    the delete that removed the row). The target must not hold it: a DELETE, or nothing."""
    delete = Call(Op.DELETE, call.key, tuple(event_ids))
    unconfirmed = state is not None and state.create_unconfirmed
    if call.op is Op.UPDATE or unconfirmed:  # on the target, or maybe
        return [_delete_step(delete, state, may_land_until)]
    steps.outcomes.append(
        Outcome(Delivery(delete, Action.DELETE), Result.DONE, sent=False, no_call=True)
    )
    return []


def _delete_step(
    call: Call, state: EntitySyncState | None, may_land_until: float = 0.0
) -> Delivery:
    unconfirmed = state is not None and state.remote_id is None and state.create_unconfirmed
    if unconfirmed and state.unconfirmed_record:
        # Its POST may have landed under an id we never heard of: find that copy first.
        return Delivery(
            call,
            Action.FIND,
            lookups=(state.unconfirmed_record,),
            may_land_until=may_land_until,
        )
    return Delivery(call, Action.DELETE, remote_id=_remote_id(call.key, state))


def _remote_id(key: EntityKey, state) -> RemoteId:
    """The entity's id on the target; without a known one, its own id (as a create sends)."""
    remote_id = getattr(state, "remote_id", None)
    return key.pk if remote_id is None else remote_id


def _parents(facts: dict[EntityKey, loading.Facts]) -> dict[EntityKey, EntityKey]:
    """Each comment's post, as the target links them (by the text of the post's id there)."""
    posts = {
        remote_key(f.remote_id): key
        for key, f in facts.items()
        if key.kind is Kind.POST and f.remote_id is not None
    }
    return {
        key: posts[f.remote_parent_key]
        for key, f in facts.items()
        if key.kind is Kind.COMMENT and f.remote_parent_key in posts
    }


def _without_parked(
    runner: Runner, events: list[Event], facts: dict[EntityKey, loading.Facts]
) -> list[Event]:
    """Leave out parked entities, unless they changed since they were parked."""
    parked = {key: f for key, f in facts.items() if f.parked_at is not None}
    if not parked:
        return events
    newest: dict[EntityKey, int] = {}
    firsts: dict[EntityKey, EventType] = {}
    for event in events:
        newest[event.key] = event.id
        firsts.setdefault(event.key, event.type)
    retry = [k for k, f in parked.items() if newest.get(k, 0) > (f.parked_event_id or 0)]
    if retry and not runner.dry_run:
        for kind in Kind:
            if pks := [key.pk for key in retry if key.kind is kind]:
                EntitySyncState.objects.filter(entity_table=TABLES[kind], entity_pk__in=pks).update(
                    parked_at=None, parked_event_id=None, attempts=0
                )
    skipped = set(parked) - set(retry)
    for key in sorted(skipped):
        if key.kind is Kind.POST and firsts.get(key) is EventType.CREATED:
            runner.writer.undelivered_posts.add(key.pk)
        if key in newest:
            failed = FailedEntity(key, f"{key}", "parked after repeated failures", True)
            runner.report.failed.append(failed)
            runner.writer.on_failure(failed)
    return [event for event in events if event.key not in skipped]
