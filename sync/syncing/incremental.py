"""The source of an incremental run: the pending events, merged into the fewest calls, and the
first step of each call.

The run drives it: `plan` (reads only), then, unless it is a dry run, `prepare` (the writes the
plan needs before any call: parked entities that changed are un-parked; created-and-deleted ones
are settled without a call), then `first_steps` batch by batch. It never calls the run back.
"""

from __future__ import annotations

from dataclasses import replace

from sync.planner import Call, EntityKey, Event, EventType, Kind, Op, Plan, plan_calls
from sync.syncing import loading, outcomes
from sync.syncing.deliveries import Action, Delivery, Outcome, Result, Steps, SyncState
from sync.syncing.report import FailedEntity, PlannedCall, SyncOptions
from sync.target import RemoteId, record_hash, remote_key


class IncrementalSource:
    """The pending events of the change log, as calls."""

    def __init__(
        self,
        *,
        options: SyncOptions,
        settle_time: float,
        undelivered_posts: set[int],
    ) -> None:
        self.options = options
        # How long after its run ended an unconfirmed create may still land (the timeout).
        self.settle_time = settle_time
        # Posts not on the target (shared with the outcome writer): their new comments wait.
        self.undelivered_posts = undelivered_posts
        self.events_pending = 0
        self.planned: tuple[PlannedCall, ...] = ()
        self.unchanged = 0  # of a dry run: planned updates the target holds already
        self.notices: list[str] = []
        self.skipped: list[FailedEntity] = []
        self._unpark: list[EntityKey] = []
        self._settled: list[Outcome] = []

    def plan(self, *, dry_run: bool) -> Plan:
        events = loading.pending_events(loading.pending_horizon())
        self.events_pending = len(events)
        states = loading.states_of({event.key for event in events})
        events = self._without_parked(events, states)
        presence = {key: s.presence for key, s in states.items() if s.presence is not None}
        plan = plan_calls(
            events,
            presence=presence,
            parents=_parents(states),
            cascade_deletes=self.options.cascade_deletes,
        )
        if any(c.key.kind is Kind.POST and c.op is Op.CREATE for c in plan.calls):
            # A comment waits only for its own post's create (`Plan.waves`).
            written = [c.key.pk for c in plan.calls if _writes_comment(c)]
            plan = replace(plan, posts=loading.posts_of(written))
        planned = [
            PlannedCall(call, _remote_id(call.key, states.get(call.key))) for call in plan.calls
        ]
        if dry_run:
            # As the run will: an update the target holds already needs no call.
            held = _held_already([p.call for p in planned if p.call.op is Op.UPDATE], states)
            planned = [p for p in planned if p.call.key not in held]
            self.unchanged = len(held)
        self.planned = tuple(planned)
        # Created and deleted again between two runs: nothing to send, nothing to remember.
        settled = set(plan.settled_event_ids)
        gone: dict[EntityKey, list[int]] = {}
        for event in events:
            if event.id in settled:
                gone.setdefault(event.key, []).append(event.id)
        self._settled = [_nothing_to_send(key, tuple(ids)) for key, ids in gone.items()]
        return plan

    def prepare(self) -> Steps:
        outcomes.unpark(self._unpark)
        return Steps(settled=self._settled)

    def first_steps(self, calls: tuple[Call, ...]) -> Steps:
        """The first step of each call of one batch (one kind, one operation): a few queries."""
        kind, op = calls[0].key.kind, calls[0].op
        batch = loading.load_batch(
            kind,
            [call.key.pk for call in calls],
            rows=op is not Op.DELETE,
            settle_time=self.settle_time,
        )
        steps = Steps()
        gone = [c.key.pk for c in calls if op is not Op.DELETE and c.key.pk not in batch.rows]
        # Its pending events, newer ones included: the row is gone, whatever order they say.
        events_of_gone = loading.pending_event_ids(kind, gone) if gone else {}
        for call in calls:
            pk = call.key.pk
            state = batch.states.get(pk)
            until = batch.may_land_until.get(pk, 0.0)
            if pk in events_of_gone:
                steps.to_send.extend(_gone_step(call, state, events_of_gone[pk], steps, until))
            elif op is Op.DELETE:
                steps.to_send.append(_delete_step(call, state, until))
            else:
                self._write_step(call, batch, state, until, steps)
        return steps

    def _write_step(
        self,
        call: Call,
        batch: loading.Batch,
        state: SyncState | None,
        until: float,
        steps: Steps,
    ) -> None:
        """The first step of a create or an update whose row is there."""
        remote_id = _remote_id(call.key, state)
        record = batch.record(call.key.pk, remote_id)
        assert record is not None, "a write step is made for a row that is there"
        post_pk = batch.rows[call.key.pk].post_id if call.key.kind is Kind.COMMENT else None
        if post_pk in self.undelivered_posts:
            error = f"held back: post {post_pk} is not on the target"
            steps.settled.append(
                Outcome(Delivery(call, Action.POST), Result.FAILED, error=error, sent=False)
            )
        elif call.op is Op.UPDATE:
            if _target_holds(state, record):
                # The target already holds exactly this record: no call.
                delivery = Delivery(call, Action.PUT, remote_id, record)
                steps.settled.append(
                    Outcome(delivery, Result.DONE, record=record, sent=False, no_call=True)
                )
            else:
                steps.to_send.append(Delivery(call, Action.PUT, remote_id, record))
        elif state is not None and state.unconfirmed:
            # An earlier POST may have landed: look for it (as sent, and as it is now) first.
            sought = tuple(r for r in (state.unconfirmed_record, record) if r)
            steps.to_send.append(
                Delivery(call, Action.FIND, record=record, sought=sought, may_land_until=until)
            )
        else:
            steps.to_send.append(Delivery(call, Action.POST, record=record, first_post=True))

    def _without_parked(self, events: list[Event], states: dict[EntityKey, SyncState]):
        """Leave out parked entities, unless they changed since they were parked (those are
        un-parked by `prepare`)."""
        parked = {key: s for key, s in states.items() if s.parked_at is not None}
        if not parked:
            return events
        newest: dict[EntityKey, int] = {}
        firsts: dict[EntityKey, EventType] = {}
        for event in events:
            newest[event.key] = event.id
            firsts.setdefault(event.key, event.type)
        self._unpark = [k for k, s in parked.items() if newest.get(k, 0) > (s.parked_event_id or 0)]
        skipped = set(parked) - set(self._unpark)
        for key in sorted(skipped):
            if key.kind is Kind.POST and firsts.get(key) is EventType.CREATED:
                self.undelivered_posts.add(key.pk)
            if key in newest:
                self.skipped.append(
                    FailedEntity(key, f"{key}", "parked after repeated failures", True)
                )
        return [event for event in events if event.key not in skipped]


def _writes_comment(call: Call) -> bool:
    return call.key.kind is Kind.COMMENT and call.op is not Op.DELETE


def _nothing_to_send(key: EntityKey, event_ids: tuple[int, ...]) -> Outcome:
    """An entity created and deleted again before it was sent: settled, and forgotten."""
    call = Call(Op.DELETE, key, event_ids)
    return Outcome(Delivery(call, Action.DELETE), Result.DONE, sent=False, no_call=True)


def _gone_step(
    call: Call,
    state: SyncState | None,
    event_ids: list[int],
    steps: Steps,
    may_land_until: float,
) -> list[Delivery]:
    """A create or update whose row is gone: deleted since (an update can even be logged after
    the delete that removed the row). The target must not hold it: a DELETE, or nothing."""
    delete = Call(Op.DELETE, call.key, tuple(event_ids))
    unconfirmed = state is not None and state.unconfirmed
    if call.op is Op.UPDATE or unconfirmed:  # on the target, or maybe
        return [_delete_step(delete, state, may_land_until)]
    steps.settled.append(_nothing_to_send(call.key, tuple(event_ids)))
    return []


def _delete_step(call: Call, state: SyncState | None, may_land_until: float = 0.0) -> Delivery:
    if (
        state is not None
        and state.remote_id is None
        and state.unconfirmed
        and state.unconfirmed_record
    ):
        # Its POST may have landed under an id we never heard of: find that copy first.
        return Delivery(
            call,
            Action.FIND,
            sought=(state.unconfirmed_record,),
            may_land_until=may_land_until,
        )
    return Delivery(call, Action.DELETE, remote_id=_remote_id(call.key, state))


def _held_already(updates: list[Call], states: dict[EntityKey, SyncState]) -> set[EntityKey]:
    """The entities of these updates whose record, as it would be sent now, is the one last
    delivered (a few queries a kind)."""
    held: set[EntityKey] = set()
    for kind in Kind:
        pks = [call.key.pk for call in updates if call.key.kind is kind]
        for start in range(0, len(pks), loading.CHUNK):
            batch = loading.load_batch(kind, pks[start : start + loading.CHUNK], rows=True)
            for pk in batch.rows:
                key = EntityKey(kind, pk)
                state = states.get(key)
                if _target_holds(state, batch.record(pk, _remote_id(key, state))):
                    held.add(key)
    return held


def _target_holds(state: SyncState | None, record) -> bool:
    """The target holds exactly this record already: an update of it needs no call."""
    return state is not None and record is not None and state.delivered_hash == record_hash(record)


def _remote_id(key: EntityKey, state: SyncState | None) -> RemoteId:
    """The entity's id on the target; without a known one, its own id (as a create sends)."""
    remote_id = state.remote_id if state is not None else None
    return key.pk if remote_id is None else remote_id


def _parents(states: dict[EntityKey, SyncState]) -> dict[EntityKey, EntityKey]:
    """Each comment's post, as the target links them (by the text of the post's id there)."""
    posts = {
        remote_key(s.remote_id): key
        for key, s in states.items()
        if key.kind is Kind.POST and s.remote_id is not None
    }
    return {
        key: posts[s.remote_parent_key]
        for key, s in states.items()
        if key.kind is Kind.COMMENT and s.remote_parent_key in posts
    }
