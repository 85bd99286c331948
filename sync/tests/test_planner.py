"""Table-driven tests for the planner: merge rules, event bookkeeping, ordering, full diff."""

import random

import pytest

from sync.planner import (
    PHASES,
    Call,
    EntityKey,
    Event,
    EventType,
    Kind,
    Op,
    Phase,
    Plan,
    Presence,
    group_events,
    payloads_equal,
    plan_calls,
    plan_full,
)

CREATED, UPDATED, DELETED = EventType.CREATED, EventType.UPDATED, EventType.DELETED


def post(pk: int) -> EntityKey:
    return EntityKey(Kind.POST, pk)


def comment(pk: int) -> EntityKey:
    return EntityKey(Kind.COMMENT, pk)


def history(key: EntityKey, *types: EventType, first_id: int = 1) -> list[Event]:
    return [Event(first_id + offset, key, type_) for offset, type_ in enumerate(types)]


# --- merge rules -----------------------------------------------------------------------------

UNKNOWN, ABSENT, PRESENT, UNCONFIRMED = None, *Presence

MERGE_RULES = [
    pytest.param((CREATED,), UNKNOWN, Op.CREATE, id="created-is-create"),
    pytest.param((CREATED, UPDATED), UNKNOWN, Op.CREATE, id="created-updated-is-one-create"),
    pytest.param((CREATED, UPDATED, UPDATED, UPDATED), UNKNOWN, Op.CREATE, id="created-upd-x3"),
    pytest.param((UPDATED,), UNKNOWN, Op.UPDATE, id="updated-is-update"),
    pytest.param((UPDATED, UPDATED, UPDATED), UNKNOWN, Op.UPDATE, id="updated-x3-is-one-update"),
    pytest.param((UPDATED, DELETED), UNKNOWN, Op.DELETE, id="updated-deleted-is-delete"),
    pytest.param((UPDATED, UPDATED, DELETED), UNKNOWN, Op.DELETE, id="updated-x2-deleted"),
    pytest.param((DELETED,), UNKNOWN, Op.DELETE, id="deleted-alone-is-delete"),
    pytest.param((CREATED, DELETED), UNKNOWN, None, id="created-deleted-is-nothing"),
    pytest.param((CREATED, UPDATED, DELETED), UNKNOWN, None, id="created-updated-deleted"),
    pytest.param((DELETED, CREATED), UNKNOWN, Op.UPDATE, id="pk-reused-is-update"),
    pytest.param((DELETED, CREATED, UPDATED), UNKNOWN, Op.UPDATE, id="pk-reused-then-updated"),
    pytest.param((UPDATED, DELETED, CREATED), UNKNOWN, Op.UPDATE, id="updated-pk-reused"),
    pytest.param((CREATED, DELETED, CREATED), UNKNOWN, Op.CREATE, id="created-deleted-created"),
    pytest.param((DELETED, CREATED, DELETED), UNKNOWN, Op.DELETE, id="deleted-created-deleted"),
    # An unconfirmed create may be on the target: deleting it deletes the possible copy.
    pytest.param((CREATED, DELETED), UNCONFIRMED, Op.DELETE, id="unconfirmed-created-deleted"),
    pytest.param((CREATED, UPDATED, DELETED), UNCONFIRMED, Op.DELETE, id="unconfirmed-c-u-d"),
    pytest.param((CREATED,), UNCONFIRMED, Op.CREATE, id="unconfirmed-created-still-create"),
    pytest.param((CREATED, UPDATED), UNCONFIRMED, Op.CREATE, id="unconfirmed-created-updated"),
    pytest.param((UPDATED,), UNCONFIRMED, Op.CREATE, id="unconfirmed-updated-is-create"),
    # The sync state knows the target holds it (a full run delivered the create): no POST.
    pytest.param((CREATED,), PRESENT, Op.UPDATE, id="present-created-is-update"),
    pytest.param((CREATED, DELETED), PRESENT, Op.DELETE, id="present-created-deleted"),
    pytest.param((UPDATED,), PRESENT, Op.UPDATE, id="present-updated-is-update"),
    # The sync state knows the target does not hold it.
    pytest.param((UPDATED,), ABSENT, Op.CREATE, id="absent-updated-is-create"),
    pytest.param((UPDATED, DELETED), ABSENT, None, id="absent-updated-deleted-is-nothing"),
]


@pytest.mark.parametrize("kind", list(Kind))
@pytest.mark.parametrize(("types", "presence", "expected"), MERGE_RULES)
def test_pending_events_of_one_entity_merge_into_at_most_one_call(kind, types, presence, expected):
    key = EntityKey(kind, 7)
    events = history(key, *types, first_id=40)
    ids = tuple(event.id for event in events)

    plan = plan_calls(events, presence={} if presence is None else {key: presence})

    if expected is None:
        assert plan.calls == ()
        assert plan.settled_event_ids == ids
    else:
        assert plan.calls == (Call(expected, key, ids),)
        assert plan.settled_event_ids == ()


def test_create_then_delete_sends_nothing_and_settles_its_events():
    events = history(post(3), CREATED, UPDATED, DELETED, first_id=10)

    plan = plan_calls(events)

    assert plan.calls == ()
    assert plan.settled_event_ids == (10, 11, 12)


def test_presence_only_affects_the_entities_it_names():
    events = [
        *history(post(1), CREATED, DELETED, first_id=1),
        *history(post(2), CREATED, DELETED, first_id=3),
    ]

    plan = plan_calls(events, presence={post(2): Presence.UNCONFIRMED})

    assert plan.calls == (Call(Op.DELETE, post(2), (3, 4)),)
    assert plan.settled_event_ids == (1, 2)


def test_same_pk_of_a_post_and_a_comment_are_different_entities():
    events = [Event(1, post(5), CREATED), Event(2, comment(5), UPDATED)]

    plan = plan_calls(events)

    assert plan.calls == (Call(Op.CREATE, post(5), (1,)), Call(Op.UPDATE, comment(5), (2,)))


def test_no_events_plan_no_calls():
    plan = plan_calls([])

    assert plan == Plan(calls=(), settled_event_ids=())
    assert plan.waves() == []


# --- event bookkeeping -----------------------------------------------------------------------


def test_each_call_carries_exactly_its_entitys_events_in_ascending_order():
    events = [
        Event(1, post(1), CREATED),
        Event(2, comment(1), CREATED),
        Event(3, post(2), UPDATED),
        Event(4, post(1), UPDATED),
        Event(5, comment(1), UPDATED),
        Event(6, post(2), UPDATED),
        Event(7, post(1), UPDATED),
        Event(8, comment(2), CREATED),
        Event(9, comment(2), DELETED),
    ]

    plan = plan_calls(events)

    assert {call.key: call.event_ids for call in plan.calls} == {
        post(1): (1, 4, 7),
        post(2): (3, 6),
        comment(1): (2, 5),
    }
    assert plan.settled_event_ids == (8, 9)


def test_events_given_out_of_id_order_are_merged_in_id_order():
    # Oldest first is CREATED ... DELETED: nothing to send. Read in the given order it would be
    # DELETED ... CREATED, a re-used pk, and become an update.
    events = [Event(30, post(1), DELETED), Event(10, post(1), CREATED), Event(20, post(1), UPDATED)]

    plan = plan_calls(events)

    assert plan.calls == ()
    assert plan.settled_event_ids == (10, 20, 30)


def test_out_of_order_events_give_ascending_event_ids_per_call():
    events = [Event(9, post(1), UPDATED), Event(2, post(1), CREATED), Event(5, post(1), UPDATED)]

    plan = plan_calls(events)

    assert plan.calls == (Call(Op.CREATE, post(1), (2, 5, 9)),)


def test_settled_event_ids_are_ascending_across_entities():
    events = [
        Event(8, post(2), DELETED),
        Event(1, post(2), CREATED),
        Event(5, comment(4), DELETED),
        Event(3, comment(4), CREATED),
    ]

    plan = plan_calls(events)

    assert plan.settled_event_ids == (1, 3, 5, 8)


def test_every_event_is_in_exactly_one_call_or_settled():
    rng = random.Random(5)
    types = list(EventType)
    events = [
        Event(event_id, EntityKey(rng.choice(list(Kind)), rng.randint(1, 6)), rng.choice(types))
        for event_id in range(1, 120)
    ]

    plan = plan_calls(events)

    covered = [event_id for call in plan.calls for event_id in call.event_ids]
    assert sorted(covered + list(plan.settled_event_ids)) == list(range(1, 120))
    assert len({call.key for call in plan.calls}) == len(plan.calls)


def test_group_events_groups_per_entity_oldest_first_in_order_of_first_event():
    events = [
        Event(4, post(1), UPDATED),
        Event(2, comment(9), CREATED),
        Event(3, post(1), CREATED),
        Event(5, comment(9), UPDATED),
    ]

    groups = group_events(events)

    assert [(group.key, [e.id for e in group.events]) for group in groups] == [
        (comment(9), [2, 5]),
        (post(1), [3, 4]),
    ]


# --- ordering --------------------------------------------------------------------------------

ORDERED_CALLS = [
    Call(Op.CREATE, post(3), (3,)),
    Call(Op.CREATE, post(5), (1,)),
    Call(Op.UPDATE, post(2), (5,)),
    Call(Op.UPDATE, post(4), (4,)),
    Call(Op.CREATE, comment(4), (7,)),
    Call(Op.CREATE, comment(9), (6,)),
    Call(Op.UPDATE, comment(7), (9,)),
    Call(Op.UPDATE, comment(8), (8,)),
    Call(Op.DELETE, comment(1), (11,)),
    Call(Op.DELETE, comment(6), (10,)),
    Call(Op.DELETE, post(10), (13,)),
    Call(Op.DELETE, post(11), (12,)),
]
EVENT_TYPE_OF = {Op.CREATE: CREATED, Op.UPDATE: UPDATED, Op.DELETE: DELETED}


@pytest.mark.parametrize("seed", range(5))
def test_calls_are_ordered_by_phase_then_pk_whatever_the_event_order(seed):
    events = [Event(call.event_ids[0], call.key, EVENT_TYPE_OF[call.op]) for call in ORDERED_CALLS]
    random.Random(seed).shuffle(events)

    plan = plan_calls(events)

    assert plan.calls == tuple(ORDERED_CALLS)
    assert [str(call) for call in plan.calls[:3]] == ["POST post 3", "POST post 5", "PUT post 2"]


def test_post_create_comes_before_a_comment_created_on_it_even_when_logged_later():
    events = [
        Event(1, comment(1), UPDATED),
        Event(2, post(9), CREATED),
        Event(3, comment(2), CREATED),
    ]

    plan = plan_calls(events)

    assert [call.key for call in plan.calls] == [post(9), comment(2), comment(1)]


def test_comments_of_a_deleted_post_are_deleted_before_the_post():
    # The order Django's cascade logs them in: the comments by id, then the post.
    events = [
        Event(1, comment(3), DELETED),
        Event(2, comment(8), DELETED),
        Event(3, post(2), DELETED),
    ]

    plan = plan_calls(events)

    assert [str(call) for call in plan.calls] == [
        "DELETE comment 3",
        "DELETE comment 8",
        "DELETE post 2",
    ]


def calls(*described: str) -> tuple[Call, ...]:
    """Calls written as "create post 1", "delete comment 4"."""
    kinds = {"post": post, "comment": comment}
    return tuple(
        Call(Op(op), kinds[kind](int(pk))) for op, kind, pk in (d.split() for d in described)
    )


WAVES = [
    pytest.param(
        calls("create post 1", "delete comment 4", "delete post 2"),
        {},
        [calls("create post 1", "delete comment 4"), calls("delete post 2")],
        id="a post delete waits for the comment deletes",
    ),
    pytest.param(
        calls("create post 1", "update post 3", "create comment 5", "delete post 2"),
        {comment(5): post(3)},
        [calls("create post 1", "update post 3", "create comment 5"), calls("delete post 2")],
        id="a post delete waits for the creates: one may take the id it frees",
    ),
    pytest.param(
        calls("update post 3", "delete post 2"),
        {},
        [calls("update post 3", "delete post 2")],
        id="a post delete does not wait for post updates",
    ),
    pytest.param(
        calls("update post 3", "create comment 5", "update comment 7", "delete comment 6"),
        {},
        [calls("update post 3", "create comment 5", "update comment 7"), calls("delete comment 6")],
        id="a comment delete waits for the comment creates, not the updates",
    ),
    pytest.param(
        calls("create post 1", "create comment 5", "update comment 6", "create comment 7"),
        {comment(5): post(1), comment(6): post(1), comment(7): post(9)},
        [calls("create post 1", "create comment 7"), calls("create comment 5", "update comment 6")],
        id="a comment written to a post created in the plan waits for its create",
    ),
    pytest.param(
        calls("create post 1", "create comment 5", "update comment 6"),
        {},
        [calls("create post 1"), calls("create comment 5", "update comment 6")],
        id="a comment whose post is unknown waits for every post create",
    ),
    pytest.param(
        calls("update post 3", "create comment 5", "update comment 6"),
        {},
        [calls("update post 3", "create comment 5", "update comment 6")],
        id="without post creates nothing needs one",
    ),
    pytest.param(
        calls("create post 1", "update comment 6", "delete comment 8", "delete post 2"),
        {comment(6): post(1)},
        [
            calls("create post 1", "delete comment 8"),
            calls("update comment 6"),
            calls("delete post 2"),
        ],
        id="a post delete waits for a comment update that waits for a post create",
    ),
    pytest.param(
        calls("delete post 2", "delete post 3"),
        {},
        [calls("delete post 2", "delete post 3")],
        id="post deletes alone go at once",
    ),
]


@pytest.mark.parametrize(("planned", "posts", "expected"), WAVES)
def test_waves_hold_back_only_what_needs_another_call_first(planned, posts, expected):
    assert Plan(calls=planned, posts=posts).waves() == expected


def test_waves_of_every_phase_keep_the_phase_order_within_each_wave():
    plan = Plan(calls=tuple(ORDERED_CALLS))

    assert (
        plan.waves()
        == [
            tuple(ORDERED_CALLS[:4]),  # post creates and updates
            tuple(ORDERED_CALLS[4:8]),  # comment creates and updates (their posts unknown)
            tuple(ORDERED_CALLS[8:10]),  # comment deletes
            tuple(ORDERED_CALLS[10:]),  # post deletes
        ]
    )


def test_count_counts_calls_per_operation():
    plan = Plan(calls=tuple(ORDERED_CALLS))

    assert (plan.count(Op.CREATE), plan.count(Op.UPDATE), plan.count(Op.DELETE)) == (4, 4, 4)
    assert Plan(calls=()).count(Op.CREATE) == 0


# --- small vocabulary ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("op", "method"), [(Op.CREATE, "POST"), (Op.UPDATE, "PUT"), (Op.DELETE, "DELETE")]
)
def test_op_method_is_the_http_method(op, method):
    assert op.method == method


@pytest.mark.parametrize(("kind", "resource"), [(Kind.POST, "posts"), (Kind.COMMENT, "comments")])
def test_kind_resource_is_the_targets_collection(kind, resource):
    assert kind.resource == resource


@pytest.mark.parametrize(
    ("kind", "op", "phase"),
    [
        (Kind.POST, Op.CREATE, Phase.POST_CREATE),
        (Kind.POST, Op.UPDATE, Phase.POST_UPDATE),
        (Kind.COMMENT, Op.CREATE, Phase.COMMENT_CREATE),
        (Kind.COMMENT, Op.UPDATE, Phase.COMMENT_UPDATE),
        (Kind.COMMENT, Op.DELETE, Phase.COMMENT_DELETE),
        (Kind.POST, Op.DELETE, Phase.POST_DELETE),
    ],
)
def test_call_phase_follows_kind_and_operation(kind, op, phase):
    assert Call(op, EntityKey(kind, 1)).phase is phase


def test_every_kind_and_operation_has_a_phase():
    assert set(PHASES) == {(kind, op) for kind in Kind for op in Op}
    assert sorted(PHASES.values()) == list(Phase)


def test_entity_key_reads_as_kind_and_pk():
    assert str(comment(12)) == "comment 12"
    assert str(Call(Op.DELETE, post(4))) == "DELETE post 4"


# --- full sync -------------------------------------------------------------------------------


def post_payload(title: str = "t", body: str = "b", user_id: int = 1) -> dict[str, object]:
    return {"userId": user_id, "title": title, "body": body}


FULL_CASES = [
    pytest.param({}, {}, [], id="both-empty"),
    pytest.param({post(1): post_payload()}, {post(1): post_payload()}, [], id="equal"),
    pytest.param({post(1): post_payload()}, {}, [Call(Op.CREATE, post(1))], id="create-missing"),
    pytest.param({}, {post(1): post_payload()}, [Call(Op.DELETE, post(1))], id="delete-extra"),
    pytest.param(
        {post(1): post_payload(title="new")},
        {post(1): post_payload(title="old")},
        [Call(Op.UPDATE, post(1))],
        id="update-differing-value",
    ),
    pytest.param(
        {post(1): post_payload()},
        {post(1): {"userId": 1, "title": "t"}},
        [Call(Op.UPDATE, post(1))],
        id="update-missing-field",
    ),
    pytest.param(
        {post(1): post_payload()},
        {post(1): {**post_payload(), "id": 1, "views": 3}},
        [],
        id="extra-target-fields-ignored",
    ),
    pytest.param(
        {post(1): post_payload(user_id=1)},
        {post(1): post_payload(user_id="1")},
        [Call(Op.UPDATE, post(1))],
        id="type-differs",
    ),
    pytest.param(
        {comment(1): {"postId": 1, "body": "x"}},
        {comment(1): {"postId": 2, "body": "x"}},
        [Call(Op.UPDATE, comment(1))],
        id="comment-moved",
    ),
]


@pytest.mark.parametrize(("local", "remote", "expected"), FULL_CASES)
def test_plan_full_makes_the_target_equal_to_local_with_minimal_calls(local, remote, expected):
    plan = plan_full(local, remote)

    assert list(plan.calls) == expected
    assert plan.settled_event_ids == ()


def test_plan_full_orders_calls_by_phase_then_pk():
    local = {
        post(1): post_payload(),
        post(2): post_payload(title="new"),
        post(8): post_payload(),
        post(3): post_payload(),
        comment(5): {"postId": 8, "body": "c"},
        comment(2): {"postId": 1, "body": "new"},
        comment(9): {"postId": 8, "body": "c"},
    }
    remote = {
        post(1): post_payload(),
        post(2): post_payload(title="old"),
        post(6): post_payload(),
        post(4): post_payload(),
        comment(2): {"postId": 1, "body": "old"},
        comment(7): {"postId": 6, "body": "c"},
        comment(1): {"postId": 4, "body": "c"},
    }

    plan = plan_full(local, remote)

    assert [str(call) for call in plan.calls] == [
        "POST post 3",
        "POST post 8",
        "PUT post 2",
        "POST comment 5",
        "POST comment 9",
        "PUT comment 2",
        "DELETE comment 1",
        "DELETE comment 7",
        "DELETE post 4",
        "DELETE post 6",
    ]
    assert all(call.event_ids == () for call in plan.calls)


PAYLOAD_CASES = [
    pytest.param({"a": 1}, {"a": 1}, True, id="equal"),
    pytest.param({}, {"a": 1}, True, id="nothing-sent"),
    pytest.param({"a": 1}, {"a": 1, "id": 3}, True, id="extra-field-theirs"),
    pytest.param({"a": 1}, {"a": 2}, False, id="differing-value"),
    pytest.param({"a": 1, "b": ""}, {"a": 1}, False, id="missing-field"),
    pytest.param({"a": None}, {}, False, id="missing-field-we-send-as-null"),
    pytest.param({"a": None}, {"a": None}, True, id="both-null"),
    pytest.param({"a": 1}, {"a": "1"}, False, id="type-differs"),
    pytest.param({"a": ""}, {"a": None}, False, id="empty-is-not-null"),
]


@pytest.mark.parametrize(("ours", "theirs", "expected"), PAYLOAD_CASES)
def test_payloads_equal_compares_every_field_we_send(ours, theirs, expected):
    assert payloads_equal(ours, theirs) is expected
