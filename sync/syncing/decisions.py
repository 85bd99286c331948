"""What follows an answer that needs thought: a lost answer to a POST, a lookup's findings, a
PUT the target could not apply. Decided in the main thread, with the database at hand."""

from __future__ import annotations

from collections.abc import Mapping

from sync.matching import Lookup, pick_records, unique_by_id
from sync.planner import EntityKey, Kind, Op
from sync.syncing.deliveries import Action, Delivery, Followups, Outcome, Result
from sync.syncing.loading import claimed_records
from sync.target import holds


def decide(
    undecided: list[Outcome],
    *,
    last_round: bool,
    max_posts: int,
    deleted: Mapping[tuple[Kind, int], float] | None = None,
) -> Followups:
    """The next step for each call whose answer needs thought.

    `deleted`: the records this run has deleted, and when each DELETE was answered.
    """
    next_steps = Followups()
    picks = pick([o for o in undecided if o.result is Result.FOUND], deleted or {})
    for outcome in undecided:
        delivery = outcome.delivery
        wrote = delivery.wrote or delivery.action is not Action.FIND
        if outcome.result is Result.GONE:
            # The target lost the record: create it again (flagged like any create).
            record = {**(delivery.record or {}), "id": delivery.entity.pk}
            next_steps.deliveries.append(
                Delivery(delivery.call, Action.POST, record=record, wrote=True)
            )
            continue
        next_steps.outcomes.extend(
            _after_lookup(
                outcome,
                picks.get(delivery.entity),
                wrote,
                next_steps,
                last_round=last_round,
                max_posts=max_posts,
            )
        )
    return next_steps


def pick(
    found: list[Outcome], deleted: Mapping[tuple[Kind, int], float]
) -> dict[EntityKey, dict | None]:
    """One record (or none) per entity, from everything the round's lookups found.

    Lookups run at different moments of a round, so one may miss a record another saw;
    records of the same content are interchangeable, so each entity chooses among all of
    them. A record this run deleted after every lookup that saw it had started is gone: it is
    not taken (a record seen after its id was deleted is a new one under the same id).
    """
    picks: dict[EntityKey, dict | None] = {}
    for kind in Kind:
        of_kind = [o for o in found if o.delivery.entity.kind is kind]
        if not of_kind:
            continue
        pool = unique_by_id(record for o in of_kind for record in o.candidates)
        besides = [o.delivery.entity.pk for o in of_kind]
        claimed = claimed_records(kind, pool, besides=besides) | _deleted_since_seen(
            kind, of_kind, deleted
        )
        lookups = [
            Lookup(
                o.delivery.entity,
                o.delivery.entity.pk,
                tuple(r for r in pool if any(holds(r, c) for c in _contents(o.delivery))),
            )
            for o in of_kind
        ]
        picks.update(pick_records(lookups, claimed))
    return picks


def _deleted_since_seen(
    kind: Kind, lookups: list[Outcome], deleted: Mapping[tuple[Kind, int], float]
) -> set[tuple[Kind, int]]:
    """The records found that a DELETE of this run removed after the last lookup that saw them
    had started."""
    last_seen: dict[int, float] = {}
    for outcome in lookups:
        for record in outcome.candidates:
            ident = record.get("id")
            if isinstance(ident, int):
                last_seen[ident] = max(last_seen.get(ident, 0.0), outcome.seen_at)
    return {
        (kind, ident)
        for ident, seen in last_seen.items()
        if deleted.get((kind, ident), -1.0) >= seen
    }


def _contents(delivery: Delivery) -> tuple[dict, ...]:
    """What a lookup for this delivery looks for: the contents it may have sent."""
    return tuple(r for r in (*delivery.lookups, delivery.record) if r)


def _after_lookup(
    outcome: Outcome,
    picked: dict | None,
    wrote: bool,
    next_steps: Followups,
    *,
    last_round: bool,
    max_posts: int,
) -> list[Outcome]:
    """What follows a lookup by content: a step for the next round, or a final outcome."""
    delivery = outcome.delivery
    if delivery.call.op is Op.DELETE:
        if picked is None:  # nothing of it on the target
            return [Outcome(delivery, Result.DONE, sent=False, no_call=not wrote)]
        next_steps.deliveries.append(
            Delivery(delivery.call, Action.DELETE, remote_id=picked["id"], wrote=True)
        )
        return []
    record = delivery.record or {}
    if picked is not None:
        adopted = {**record, "id": picked["id"]}
        if holds(picked, record):
            return [Outcome(delivery, Result.DONE, record=adopted, sent=False, no_call=not wrote)]
        # Ours, with an older content: make it equal. The PUT is the create's one call.
        next_steps.deliveries.append(
            Delivery(delivery.call, Action.PUT, remote_id=picked["id"], record=adopted, wrote=True)
        )
        return []
    posts_sent = delivery.posts_sent + (1 if delivery.action is Action.POST else 0)
    if posts_sent >= max_posts or last_round:
        error = outcome.error or "its create may have landed"
        return [
            Outcome(
                delivery,
                Result.FAILED,
                error=f"{error}; not found on the target yet: the next run looks again",
            )
        ]
    next_steps.deliveries.append(
        Delivery(delivery.call, Action.POST, record=record, posts_sent=posts_sent, wrote=wrote)
    )
    return []
