"""What follows an answer that needs thought, decided without a database or a target.

Each row: the answers a round got (a lookup's findings, a PUT the target could not apply), the
records other entities claim, the DELETEs this run made; and the step that follows for the
entity, or its final outcome.
"""

import math

import pytest

from sync.planner import Call, EntityKey, Kind, Op
from sync.syncing.decisions import decide, pick
from sync.syncing.deliveries import Action, Delivery, Outcome, Result, TargetTraits

OURS = {"userId": 1, "title": "ours", "body": "b"}
POST_7 = EntityKey(Kind.POST, 7)


def found(
    *records: dict,
    op: Op = Op.CREATE,
    sought: tuple[dict, ...] = (OURS,),
    close: tuple[dict, ...] = (),
    sent_at: float = 10.0,
    own_id_taken: bool = False,
    **delivery,
) -> Outcome:
    """A lookup of post 7 that found `records` (and `close` ones: its own id's, texts
    normalised)."""
    record = {**OURS, "id": 7} if op is Op.CREATE else None
    return Outcome(
        Delivery(Call(op, POST_7), Action.FIND, record=record, sought=sought, **delivery),
        Result.FOUND,
        candidates=tuple(records),
        close_candidates=close,
        sent_at=sent_at,
        answered_at=sent_at + 0.1,
        own_id_taken=own_id_taken,
    )


def rec(ident, **fields) -> dict:
    return {**OURS, **fields, "id": ident}


CASES = {
    "its own id among copies of its content is taken, on a target that keeps ids": (
        found(rec(9), rec(7)),
        {"keeps_ids": True},
        ("settled", Result.DONE, 7),
    ),
    "not on a target not known to keep them: the newest copy": (
        found(rec(7), rec(9)),
        {},
        ("settled", Result.DONE, 9),
    ),
    "nor when its first POST met a record already under its id": (
        found(rec(7), rec(5), own_id_taken=True),
        {"keeps_ids": True},
        ("settled", Result.DONE, 5),
    ),
    "the newest free copy on a target that picks its own ids": (
        found(rec(3), rec(8)),
        {},
        ("settled", Result.DONE, 8),
    ),
    "string ids: the copy the target listed last": (
        found(rec("b-2"), rec("a-9")),
        {},
        ("settled", Result.DONE, "a-9"),
    ),
    '"7" is the entity\'s own id 7': (
        found(rec("8"), rec("7")),
        {"keeps_ids": True},
        ("settled", Result.DONE, "7"),
    ),
    "a record another entity holds is never taken: the create goes again": (
        found(rec(9)),
        {"claimed": {(Kind.POST, "9")}},
        ("sent", Action.POST, None),
    ),
    "a copy with an older content of ours is made equal by one PUT": (
        found(rec(9, title="old"), sought=({**OURS, "title": "old"}, OURS)),
        {},
        ("sent", Action.PUT, 9),
    ),
    "nothing found: the create is sent again": (
        found(),
        {},
        ("sent", Action.POST, None),
    ),
    "nothing found after as many POSTs as the client tries a call: it fails, not counted": (
        found(posts_sent=3),
        {"max_posts": 3},
        ("settled", Result.FAILED, False),
    ),
    "a create the target answered 2xx without an id, never found: fails, counted": (
        found(landed=True),
        {},
        ("settled", Result.FAILED, True),
    ),
    "an earlier POST may still land: looked for again once it cannot": (
        found(may_land_until=12.0),
        {"wait_until": 20.0},
        ("sent", Action.FIND, 12.0),
    ),
    "an earlier POST may still land after the run's budget: left for the next run": (
        found(may_land_until=30.0),
        {"wait_until": 20.0},
        ("settled", Result.FAILED, False),
    ),
    "a deleted row's copy is found: it is deleted": (
        found(rec(9), op=Op.DELETE),
        {},
        ("sent", Action.DELETE, 9),
    ),
    "a deleted row's copy is not there: done without a call": (
        found(op=Op.DELETE),
        {},
        ("settled", Result.DONE, None),
    ),
    "a record seen before this run's DELETE of it was sent is gone": (
        found(rec(9), sent_at=1.0),
        {"deleted": {(Kind.POST, "9"): (5.0, 6.0)}},
        ("sent", Action.POST, None),
    ),
    "a record seen while this run's DELETE of it was under way: looked for again": (
        found(rec(9), sent_at=5.5),
        {"deleted": {(Kind.POST, "9"): (5.0, 6.0)}},
        ("sent", Action.FIND, 0.0),
    ),
    "a record under an id deleted before the lookup began is a new one: taken": (
        found(rec(9), sent_at=7.0),
        {"deleted": {(Kind.POST, "9"): (5.0, 6.0)}},
        ("settled", Result.DONE, 9),
    ),
    "a field the target is known to rewrite is compared normalised": (
        found(rec(9, title="OURS")),
        {"rewrites": {"post": ["title"]}},
        ("settled", Result.DONE, 9),
    ),
    "its own id's record, texts normalised, on a target that keeps ids": (
        found(close=(rec(7, title=" Ours "),)),
        {"keeps_ids": True},
        ("settled", Result.DONE, 7),
    ),
}


@pytest.mark.parametrize("outcome, given, expected", CASES.values(), ids=CASES.keys())
def test_what_follows_a_lookup(outcome, given, expected):
    steps = decide(
        [outcome],
        claimed=given.get("claimed", set()),
        last_round=False,
        max_posts=given.get("max_posts", 5),
        deleted=given.get("deleted", {}),
        traits=TargetTraits(given.get("rewrites"), given.get("keeps_ids")),
        wait_until=given.get("wait_until", math.inf),
    )

    where, what, detail = expected
    if where == "sent":
        [step] = steps.to_send
        assert steps.settled == []
        assert step.action is what
        if what in (Action.PUT, Action.DELETE):
            assert step.remote_id == detail
        if what is Action.FIND:
            assert step.not_before == detail
    else:
        [settled] = steps.settled
        assert steps.to_send == []
        assert settled.result is what
        if what is Result.DONE and detail is None:
            assert settled.record is None  # nothing of it on the target
        elif what is Result.DONE:
            assert settled.remote_id == detail
        else:
            assert settled.permanent is detail


def test_a_put_the_target_could_not_apply_creates_the_record_again():
    call = Call(Op.UPDATE, POST_7)
    gone = Outcome(Delivery(call, Action.PUT, 7, {**OURS, "id": 7}), Result.GONE)

    steps = decide([gone], last_round=False, max_posts=5)

    [step] = steps.to_send
    assert (step.action, step.record, step.wrote) == (Action.POST, {**OURS, "id": 7}, True)


def test_on_the_last_round_nothing_more_is_sent():
    steps = decide([found()], last_round=True, max_posts=5)

    assert steps.to_send == []
    assert [o.result for o in steps.settled] == [Result.FAILED]


def test_a_copy_under_another_entitys_own_id_is_left_to_it():
    """Twins whose creates are both unconfirmed: the record under the second's id, holding
    what it sent, is the second's, whatever the target does with ids."""
    first = found(rec(8))
    second = Outcome(
        Delivery(
            Call(Op.CREATE, EntityKey(Kind.POST, 8)),
            Action.FIND,
            record={**OURS, "id": 8},
            sought=(OURS,),
        ),
        Result.FOUND,
        candidates=(rec(8),),
        sent_at=10.0,
        answered_at=10.1,
    )

    steps = decide([first, second], last_round=False, max_posts=5)

    assert [(o.delivery.entity.pk, o.remote_id) for o in steps.settled] == [(8, 8)]
    assert [(d.entity.pk, d.action) for d in steps.to_send] == [(7, Action.POST)]


def test_two_entities_with_the_same_content_each_get_their_own_copy():
    other = EntityKey(Kind.POST, 8)
    mine = found(rec(20), rec(21))
    theirs = Outcome(
        Delivery(Call(Op.CREATE, other), Action.FIND, record={**OURS, "id": 8}, sought=(OURS,)),
        Result.FOUND,
        candidates=(rec(20), rec(21)),
        sent_at=10.0,
        answered_at=10.1,
    )

    steps = decide([mine, theirs], last_round=False, max_posts=5)

    assert sorted(o.remote_id for o in steps.settled) == [20, 21]


def test_records_found_under_an_id_given_again_are_taken_as_the_newest_lookup_saw_them():
    old, new = {"userId": 1, "title": "old", "body": ""}, {"userId": 1, "title": "new", "body": ""}

    def lookup(pk: int, content: dict, started: float) -> Outcome:
        call = Call(Op.CREATE, EntityKey(Kind.POST, pk))
        return Outcome(
            Delivery(call, Action.FIND, sought=(content,)),
            Result.FOUND,
            candidates=({"id": 1, **content},),
            sent_at=started,
            answered_at=started + 0.1,
        )

    before, after = lookup(7, old, started=1.0), lookup(8, new, started=3.0)
    # Record 1 was deleted between the two lookups, and the target gave its id to a new one.
    picks, again = pick([before, after], {(Kind.POST, "1"): (1.5, 2.0)})

    assert picks == {before.delivery.entity: None, after.delivery.entity: {"id": 1, **new}}
    assert again == set()
