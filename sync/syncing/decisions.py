"""What follows an answer that needs thought: a lost answer to a POST, a lookup's findings, a
PUT the target could not apply. Decided in the main thread, with the database at hand."""

from __future__ import annotations

from collections.abc import Mapping

from sync.matching import Lookup, pick_records, unique_by_id
from sync.planner import EntityKey, Kind, Op
from sync.syncing.deliveries import Action, Delivery, Followups, Outcome, Result
from sync.syncing.loading import claimed_records
from sync.target import holds

Deleted = Mapping[tuple[Kind, int], tuple[float, float]]


def decide(
    undecided: list[Outcome],
    *,
    last_round: bool,
    max_posts: int,
    deleted: Deleted | None = None,
) -> Followups:
    """The next step for each call whose answer needs thought.

    `deleted`: the records this run has deleted, with when each DELETE was sent and answered.
    """
    next_steps = Followups()
    picks, again = pick([o for o in undecided if o.result is Result.FOUND], deleted or {})
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
        if delivery.entity in again:
            next_steps.outcomes.extend(_look_again(outcome, wrote, next_steps, last_round))
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
    found: list[Outcome], deleted: Deleted
) -> tuple[dict[EntityKey, dict | None], set[EntityKey]]:
    """One record (or none) per entity, from everything the round's lookups found; and the
    entities that must look again.

    Lookups run at different moments of a round, so one may miss a record another saw;
    records of the same content are interchangeable, so each entity chooses among all of
    them. A record under an id this run deleted is taken only if a lookup that saw it began
    after the DELETE was answered (a new record under the same id: a target may give an id
    again). Seen only before the DELETE was sent, it is gone; seen while the DELETE was under
    way, it may be either, and the entities that saw it look again in the next round.
    """
    picks: dict[EntityKey, dict | None] = {}
    again: set[EntityKey] = set()
    for kind in Kind:
        of_kind = [o for o in found if o.delivery.entity.kind is kind]
        if not of_kind:
            continue
        # Each id as the newest lookup saw it: an id given again holds another record.
        newest_first = sorted(of_kind, key=lambda o: o.sent_at, reverse=True)
        pool = unique_by_id(record for o in newest_first for record in o.candidates)
        besides = [o.delivery.entity.pk for o in of_kind]
        gone, unsure = _deleted_records(kind, of_kind, deleted)
        again |= {
            o.delivery.entity for o in of_kind if any(r.get("id") in unsure for r in o.candidates)
        }
        claimed = claimed_records(kind, pool, besides=besides)
        claimed |= {(kind, ident) for ident in gone | unsure}
        lookups = [
            Lookup(
                o.delivery.entity,
                o.delivery.entity.pk,
                tuple(r for r in pool if any(holds(r, c) for c in _contents(o.delivery))),
            )
            for o in of_kind
            if o.delivery.entity not in again
        ]
        picks.update(pick_records(lookups, claimed))
    return picks, again


def _deleted_records(
    kind: Kind, lookups: list[Outcome], deleted: Deleted
) -> tuple[set[int], set[int]]:
    """The ids found that a DELETE of this run removed after the lookups saw them (gone), and
    those that the lookups saw while such a DELETE was under way (unsure)."""
    seen: dict[int, list[Outcome]] = {}
    for outcome in lookups:
        for record in outcome.candidates:
            if isinstance(record.get("id"), int):
                seen.setdefault(record["id"], []).append(outcome)
    gone: set[int] = set()
    unsure: set[int] = set()
    for ident, outcomes in seen.items():
        window = deleted.get((kind, ident))
        if window is None:
            continue
        sent, answered = window
        if any(o.sent_at >= answered for o in outcomes):
            continue  # looked up after the DELETE: a new record under that id
        if all(o.answered_at <= sent for o in outcomes):
            gone.add(ident)
        else:
            unsure.add(ident)
    return gone, unsure


def _look_again(
    outcome: Outcome, wrote: bool, next_steps: Followups, last_round: bool
) -> list[Outcome]:
    """A lookup that saw a record it cannot tell from one this run deleted: one more lookup,
    made once that DELETE has been answered."""
    delivery = outcome.delivery
    if last_round:
        error = "a record found may be one this run deleted: the next run looks again"
        return [Outcome(delivery, Result.FAILED, error=error)]
    next_steps.deliveries.append(
        Delivery(
            delivery.call,
            Action.FIND,
            record=delivery.record,
            lookups=_contents(delivery),
            posts_sent=delivery.posts_sent + (1 if delivery.action is Action.POST else 0),
            wrote=wrote,
        )
    )
    return []


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
