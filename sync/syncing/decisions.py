"""What follows an answer that needs thought: a lost answer to a POST, a lookup's findings, a
PUT the target could not apply; and which record on the target is an entity's own.

Pure code: the outcomes of a round and the records other entities claim in, the next steps and
final outcomes out. No database and no HTTP: the run reads the claims (`loading.claimed_for`)
and sends the steps. Records are told apart by the text of their ids (`sync.ids.remote_key`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, replace

from sync.ids import comparable_id, key_of, remote_key, unique_by_id
from sync.planner import EntityKey, Kind, Op
from sync.syncing.deliveries import Action, Delivery, Outcome, Result, Steps, TargetTraits
from sync.target import Record, content, holds, our_fields, rewritten_fields

Deleted = Mapping[tuple[Kind, str], tuple[float, float]]
Claimed = AbstractSet[tuple[Kind, str]]


def decide(
    undecided: list[Outcome],
    *,
    last_round: bool,
    max_posts: int,
    claimed: Claimed = frozenset(),
    deleted: Deleted | None = None,
    traits: TargetTraits | None = None,
    wait_until: float = float("inf"),
) -> Steps:
    """The next step for each call whose answer needs thought.

    `claimed`: the records (by kind and remote key) that other entities hold or may hold.
    `deleted`: the records this run has deleted, with when each DELETE was sent and answered.
    `traits`: what the target is known to do (the fields it rewrites, whether it keeps the ids
    it is sent). `wait_until`: the latest moment (time.monotonic()) this run may wait for a
    POST that may still land.
    """
    traits = traits or TargetTraits()
    next_steps = Steps()
    found = [o for o in undecided if o.result is Result.FOUND]
    picks, again = pick(found, deleted or {}, traits, claimed=claimed)
    for outcome in undecided:
        delivery = outcome.delivery
        wrote = delivery.wrote or delivery.action is not Action.FIND
        if outcome.result is Result.GONE:
            # The target lost the record: create it again (flagged like any create).
            record = {**(delivery.record or {}), "id": delivery.entity.pk}
            next_steps.to_send.append(
                Delivery(delivery.call, Action.POST, record=record, wrote=True)
            )
            continue
        if delivery.entity in again:
            next_steps.settled.extend(_look_again(outcome, wrote, next_steps, last_round))
            continue
        next_steps.settled.extend(
            _after_lookup(
                outcome,
                picks.get(delivery.entity),
                wrote,
                next_steps,
                last_round=last_round,
                max_posts=max_posts,
                traits=traits,
                wait_until=wait_until,
            )
        )
    return next_steps


def pick(
    found: list[Outcome],
    deleted: Deleted,
    traits: TargetTraits | None = None,
    *,
    claimed: Claimed = frozenset(),
) -> tuple[dict[EntityKey, dict | None], set[EntityKey]]:
    """One record (or none) per entity, from everything the round's lookups found; and the
    entities that must look again.

    Lookups run at different moments of a round, so one may miss a record another saw;
    records of the same content are interchangeable, so each entity chooses among all of them
    that hold its content (texts the target is known to rewrite compared normalised). Its own
    id is preferred only on a target known to keep the ids it is sent, and not when its first
    POST found a record already there. A record under its own id that holds its content once
    every text is normalised (`close_candidates`) is taken only where none holds it exactly.
    A record under an id this run deleted is taken only if a lookup that saw it began after the
    DELETE was answered (a new record under the same id: a target may give an id again). Seen
    only before the DELETE was sent, it is gone; seen while the DELETE was under way, it may be
    either, and the entities that saw it look again in the next round.
    """
    traits = traits or TargetTraits()
    picks: dict[EntityKey, dict | None] = {}
    again: set[EntityKey] = set()
    for kind in Kind:
        of_kind = [o for o in found if o.delivery.entity.kind is kind]
        if not of_kind:
            continue
        # Each id as the newest lookup saw it: an id given again holds another record.
        newest_first = sorted(of_kind, key=lambda o: o.sent_at, reverse=True)
        pool = unique_by_id(record for o in newest_first for record in o.candidates)
        gone, unsure = _deleted_records(kind, of_kind, deleted)
        again |= {
            o.delivery.entity
            for o in of_kind
            if any(key_of(r) in unsure for r in (*o.candidates, *o.close_candidates))
        }
        taken = set(claimed) | {(kind, ident) for ident in gone | unsure}
        deciding = [o for o in of_kind if o.delivery.entity not in again]
        rewritten = traits.rewrites(kind)
        holding = {
            o.delivery.entity: tuple(
                r
                for r in pool
                if any(holds(r, c, rewritten=rewritten) for c in _contents(o.delivery))
            )
            for o in deciding
        }
        # A record under another entity's own id, holding what that entity sent, may be its:
        # left to it (as claimed_records does across rounds).
        reserved: dict[str | None, EntityKey] = {
            remote_key(o.delivery.entity.pk): o.delivery.entity
            for o in deciding
            if not o.own_id_taken
            and any(
                key_of(r) == remote_key(o.delivery.entity.pk) for r in holding[o.delivery.entity]
            )
        }
        exact = [
            Candidates(
                o.delivery.entity,
                o.delivery.entity.pk if traits.keeps_ids and not o.own_id_taken else None,
                tuple(
                    r
                    for r in holding[o.delivery.entity]
                    if reserved.get(key_of(r), o.delivery.entity) == o.delivery.entity
                    and not (o.own_id_taken and key_of(r) == remote_key(o.delivery.entity.pk))
                ),
            )
            for o in deciding
        ]
        first = pick_records(exact, taken)
        picks.update(first)
        close = [
            Candidates(o.delivery.entity, o.delivery.entity.pk, o.close_candidates)
            for o in deciding
            if first.get(o.delivery.entity) is None and o.close_candidates
        ]
        if close:
            second = pick_records(close, taken | taken_by(first), own_id_only=True)
            picks.update({key: record for key, record in second.items() if record is not None})
    return picks, again


def _deleted_records(
    kind: Kind, lookups: list[Outcome], deleted: Deleted
) -> tuple[set[str], set[str]]:
    """The ids found that a DELETE of this run removed after the lookups saw them (gone), and
    those that the lookups saw while such a DELETE was under way (unsure)."""
    seen: dict[str, list[Outcome]] = {}
    for outcome in lookups:
        for record in (*outcome.candidates, *outcome.close_candidates):
            ident = key_of(record)
            if ident is not None:
                seen.setdefault(ident, []).append(outcome)
    gone: set[str] = set()
    unsure: set[str] = set()
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
    outcome: Outcome, wrote: bool, next_steps: Steps, last_round: bool
) -> list[Outcome]:
    """A lookup that saw a record it cannot tell from one this run deleted: one more lookup,
    made once that DELETE has been answered."""
    delivery = outcome.delivery
    if last_round:
        error = "a record found may be one this run deleted: the next run looks again"
        return [Outcome(delivery, Result.FAILED, error=error)]
    next_steps.to_send.append(
        Delivery(
            delivery.call,
            Action.FIND,
            record=delivery.record,
            sought=_contents(delivery),
            posts_sent=delivery.posts_sent + (1 if delivery.action is Action.POST else 0),
            wrote=wrote,
            may_land_until=delivery.may_land_until,
            landed=delivery.landed,
        )
    )
    return []


def _contents(delivery: Delivery) -> tuple[dict, ...]:
    """What a lookup for this delivery looks for: the contents it may have sent."""
    return tuple(r for r in (*delivery.sought, delivery.record) if r)


def _after_lookup(
    outcome: Outcome,
    picked: dict | None,
    wrote: bool,
    next_steps: Steps,
    *,
    last_round: bool,
    max_posts: int,
    traits: TargetTraits,
    wait_until: float,
) -> list[Outcome]:
    """What follows a lookup by content: a step for the next round, or a final outcome."""
    delivery = outcome.delivery
    kind = delivery.entity.kind
    if picked is None and outcome.sent_at < delivery.may_land_until:
        # A POST (an earlier run's, or this one's answered 502 or cut off) may still be on its
        # way: finding nothing proves nothing yet. Look again once it can no longer land, if
        # this run may wait that long.
        if last_round or delivery.may_land_until > wait_until:
            error = "its create may still land: the next run looks again"
            if outcome.error:
                error = f"{outcome.error}; {error}"
            return [Outcome(delivery, Result.FAILED, error=error)]
        next_steps.to_send.append(
            replace(
                delivery,
                action=Action.FIND,
                # Its POST went: were this lookup never sent (the run stopped), the create may
                # still have landed, and keeps its flag for the next run.
                first_post=False,
                sought=_contents(delivery),
                posts_sent=delivery.posts_sent + (1 if delivery.action is Action.POST else 0),
                wrote=wrote,
                not_before=delivery.may_land_until,
                write_status=outcome.write_status,
            )
        )
        return []
    if picked is None and traits.version > outcome.traits_version and not last_round:
        # More became known of the target after this lookup was sent (a rewrite, that it keeps
        # the ids it is sent): look again with it.
        next_steps.to_send.append(
            replace(delivery, action=Action.FIND, sought=_contents(delivery), wrote=wrote)
        )
        return []
    if delivery.call.op is Op.DELETE:
        if picked is None:  # nothing of it on the target
            return [Outcome(delivery, Result.DONE, sent=False, no_call=not wrote)]
        next_steps.to_send.append(
            Delivery(delivery.call, Action.DELETE, remote_id=picked["id"], wrote=True)
        )
        return []
    record = delivery.record or {}
    if picked is not None:
        adopted = {**record, "id": picked["id"]}
        stored = our_fields(kind, {**picked, "id": picked["id"]})
        sent = _sent_content(delivery, picked, traits.rewrites(kind))
        rewritten = frozenset(rewritten_fields(kind, sent, picked)) if sent else frozenset()
        if holds(picked, record, rewritten=traits.rewrites(kind)) or (
            sent is not None and content(sent) == content(record)
        ):
            # The target holds our record, as it stores what it is sent.
            traits.learn_rewrites(kind, rewritten)
            return [
                Outcome(
                    delivery,
                    Result.DONE,
                    record=adopted,
                    sent=False,
                    no_call=not wrote,
                    acknowledged=None if stored == our_fields(kind, adopted) else stored,
                    rewritten=rewritten,
                )
            ]
        # Ours, with an older content: make it equal. The PUT is the create's one call.
        traits.learn_rewrites(kind, rewritten)
        next_steps.to_send.append(
            Delivery(
                delivery.call,
                Action.PUT,
                remote_id=picked["id"],
                record=adopted,
                wrote=True,
                adopts=True,
            )
        )
        return []
    posts_sent = delivery.posts_sent + (1 if delivery.action is Action.POST else 0)
    if delivery.landed or posts_sent >= max_posts or last_round:
        return [_unresolved(outcome, landed=delivery.landed)]
    next_steps.to_send.append(
        Delivery(delivery.call, Action.POST, record=record, posts_sent=posts_sent, wrote=wrote)
    )
    return []


def _sent_content(delivery: Delivery, picked: Record, rewritten) -> Record | None:
    """The content the picked record was made from: the first one it holds, exactly or once
    texts are normalised (what a POST sent, before a later edit)."""
    for wanted in _contents(delivery):
        if holds(picked, wanted, rewritten=rewritten):
            return wanted
    for wanted in _contents(delivery):
        if holds(picked, wanted, loose=True):
            return wanted
    return None


def _unresolved(outcome: Outcome, *, landed: bool) -> Outcome:
    """A create whose record was not found. Counted towards parking when the target answered
    its POST (with a 5xx such as json-server's "duplicate id", or a 2xx without an id): a target
    that keeps the record where no lookup finds it would otherwise be sent to for ever."""
    error = outcome.error or "its create may have landed"
    if landed:
        error += "; no record with its content was found (the target may rewrite what it stores)"
        return Outcome(outcome.delivery, Result.FAILED, error=error, permanent=True)
    return Outcome(
        outcome.delivery,
        Result.FAILED,
        error=f"{error}; not found on the target yet: the next run looks again",
        http_status=outcome.write_status,
    )


# --- Which record is whose ------------------------------------------------------------------


@dataclass(frozen=True)
class Candidates:
    """An entity whose create may have landed: the records that may be its own, and its own id
    where a record under it is likely its own (None elsewhere)."""

    key: EntityKey
    own_id: int | None
    records: tuple[Record, ...]


def pick_records(
    lookups: Sequence[Candidates],
    claimed: Iterable[tuple[Kind, str]],
    *,
    own_id_only: bool = False,
) -> dict[EntityKey, Record | None]:
    """Give each entity at most one of its candidates, never one that another entity holds.

    `claimed` are the records other entities are known to hold. Entities with an own id (a
    target that keeps the ids it is sent) among their candidates take that record first; the
    others then take the newest record still free, in entity order: on a target that picks its
    own ids, records it held before ours came earlier (lower ids, or earlier in its list).
    Records with the same content are interchangeable, so this never leaves a duplicate behind
    when each has its copy. With `own_id_only`, only a record under the own id is taken.
    """
    taken: set[tuple[Kind, str | None]] = set(claimed)
    picked: dict[EntityKey, Record | None] = {lookup.key: None for lookup in lookups}
    for lookup in lookups:
        if lookup.own_id is None:
            continue
        for record in lookup.records:
            ident = (lookup.key.kind, key_of(record))
            if ident[1] == remote_key(lookup.own_id) and ident not in taken:
                picked[lookup.key] = record
                taken.add(ident)
                break
    if own_id_only:
        return picked
    for lookup in sorted(lookups, key=lambda lookup: lookup.key):
        if picked[lookup.key] is not None:
            continue
        free = [
            record
            for record in lookup.records
            if key_of(record) is not None and (lookup.key.kind, key_of(record)) not in taken
        ]
        if free:
            record = newest(free)
            picked[lookup.key] = record
            taken.add((lookup.key.kind, key_of(record)))
    return picked


def newest(records: Sequence[Record]) -> Record:
    """The record the target made last: the highest id when every id is a number, else the last
    one the target listed."""
    ids = [comparable_id(record.get("id")) for record in records]
    if all(isinstance(ident, int) and not isinstance(ident, bool) for ident in ids):
        return records[ids.index(max(ids))]
    return records[-1]


def taken_by(picks: Mapping[EntityKey, Record | None]) -> Claimed:
    """The records these picks gave to their entities."""
    return {
        (key.kind, ident)
        for key, record in picks.items()
        if record is not None and (ident := key_of(record)) is not None
    }
