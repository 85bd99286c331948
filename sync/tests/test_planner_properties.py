"""Property tests for the planner: any history of changes, planned and delivered, converges.

The local database is modelled as target-shaped records plus a change log written the way the
app writes it (one event per save or delete, a post's delete logging its comments first, by id).
Delivery is modelled with json-server's rules: a POST of an existing id and any call to an
unknown id are errors, deleting a post also deletes its comments.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sync.planner import (
    Call,
    EntityKey,
    Event,
    EventType,
    Kind,
    Op,
    Plan,
    Presence,
    payloads_equal,
    plan_calls,
    plan_full,
)

Records = dict[EntityKey, dict[str, object]]

OPERATIONS = (
    "create_post",
    "create_comment",
    "update_post",
    "update_comment",
    "delete_comment",
    "delete_post",
)

operation_lists = st.lists(
    st.tuples(st.sampled_from(OPERATIONS), st.integers(min_value=0, max_value=10_000)),
    max_size=40,
)
# Comments per post of the initial, synced state.
initial_states = st.lists(st.integers(min_value=0, max_value=3), max_size=5)
first_event_ids = st.integers(min_value=1, max_value=10_000)

PROPERTY_SETTINGS = settings(max_examples=150, deadline=None)


@dataclass
class LocalDatabase:
    """Posts and comments as the target would hold them, and their change log."""

    records: Records = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    next_event_id: int = 1
    last_pk: dict[Kind, int] = field(default_factory=lambda: dict.fromkeys(Kind, 0))

    @classmethod
    def synced(cls, comments_per_post: list[int], first_event_id: int) -> LocalDatabase:
        db = cls(next_event_id=first_event_id)
        for count in comments_per_post:
            post = db._new_key(Kind.POST)
            db.records[post] = {"userId": 1, "title": f"imported {post.pk}", "body": ""}
            for _ in range(count):
                comment = db._new_key(Kind.COMMENT)
                db.records[comment] = {"postId": post.pk, "body": f"imported {comment.pk}"}
        return db

    def keys(self, kind: Kind) -> list[EntityKey]:
        return sorted(key for key in self.records if key.kind is kind)

    def comments_of(self, post: EntityKey) -> list[EntityKey]:
        return [key for key in self.keys(Kind.COMMENT) if self.records[key]["postId"] == post.pk]

    def apply(self, operation: str, choice: int) -> None:
        """Run one operation; `choice` picks its subject among the candidates, if there are any."""
        if operation == "create_post":
            self._log(self._new_key(Kind.POST), EventType.CREATED, {"userId": 1, "title": "new"})
            return
        kind = Kind.COMMENT if operation.endswith("comment") else Kind.POST
        candidates = self.keys(Kind.POST if operation == "create_comment" else kind)
        if not candidates:
            return
        subject = candidates[choice % len(candidates)]
        if operation == "create_comment":
            comment = self._new_key(Kind.COMMENT)
            self._log(comment, EventType.CREATED, {"postId": subject.pk, "body": "new"})
        elif operation.startswith("update"):
            # Every update writes a value never seen before, so it is a real change.
            field_name = "body" if kind is Kind.COMMENT else "title"
            value = f"edit {self.next_event_id}"
            self._log(subject, EventType.UPDATED, {**self.records[subject], field_name: value})
        else:
            # Django's cascade deletes (and logs) the comments first, by id, then the post.
            doomed = self.comments_of(subject) if kind is Kind.POST else []
            for key in [*doomed, subject]:
                self._log(key, EventType.DELETED, None)

    def apply_all(self, operations: Iterable[tuple[str, int]]) -> None:
        for operation, choice in operations:
            self.apply(operation, choice)

    def pending_since(self, first_event_id: int) -> list[Event]:
        return [event for event in self.events if event.id >= first_event_id]

    def snapshot(self) -> Records:
        return {key: dict(record) for key, record in self.records.items()}

    def _new_key(self, kind: Kind) -> EntityKey:
        self.last_pk[kind] += 1
        return EntityKey(kind, self.last_pk[kind])

    def _log(self, key: EntityKey, type_: EventType, record: dict[str, object] | None) -> None:
        if record is None:
            del self.records[key]
        else:
            self.records[key] = record
        self.events.append(Event(self.next_event_id, key, type_))
        self.next_event_id += 1


def send(
    call: Call,
    local: Mapping[EntityKey, Mapping[str, object]],
    target: Records,
    *,
    maybe_on_target: frozenset[EntityKey] = frozenset(),
    after_crash: bool = False,
) -> None:
    """One call as json-server answers it, sent with the entity's current local state."""
    key = call.key
    if call.op is Op.DELETE:
        assert key not in local, f"{call} deletes an entity that exists locally"
        if key not in target:
            # A DELETE answered 404 counts as done; only a crashed run can have sent it already.
            assert after_crash, f"{call}: 404"
            return
        del target[key]
        if key.kind is Kind.POST:
            for other in [k for k, record in target.items() if record.get("postId") == key.pk]:
                del target[other]
        return
    assert key in local, f"{call} for an entity that no longer exists locally"
    if call.op is Op.CREATE:
        # The delivery looks for the copy of a create that may have landed and updates it.
        assert key not in target or key in maybe_on_target, f"{call}: duplicate id"
    else:
        assert key in target, f"{call}: 404"
    if key.kind is Kind.COMMENT:
        assert EntityKey(Kind.POST, local[key]["postId"]) in target, f"{call} before its post"
    target[key] = dict(local[key])


def deliver(
    plan: Plan,
    local: Mapping[EntityKey, Mapping[str, object]],
    target: Records,
    rng: random.Random,
    **options,
) -> Records:
    """A copy of `target` after the plan, wave after wave, each wave in a random order. Each
    comment's post is known, as an incremental run knows it (`Plan.posts`)."""
    target = {key: dict(record) for key, record in target.items()}
    posts = {
        call.key: EntityKey(Kind.POST, cast(int, local[call.key]["postId"]))
        for call in plan.calls
        if call.key.kind is Kind.COMMENT and call.key in local
    }
    for wave in replace(plan, posts=posts).waves():
        for call in rng.sample(wave, len(wave)):
            send(call, local, target, **options)
    return target


def net_changes(before: Records, after: Records) -> set[EntityKey]:
    """Entities whose record differs; one created and deleted again is in neither, so not here."""
    return {key for key in before.keys() | after.keys() if before.get(key) != after.get(key)}


def assert_plan_is_minimal_and_complete(
    plan: Plan, pending: list[Event], changed: set[EntityKey]
) -> None:
    keys = [call.key for call in plan.calls]
    assert len(keys) == len(set(keys)), "an entity got two calls"
    assert set(keys) == changed
    assert len(plan.calls) == len(changed)

    pending_ids: dict[EntityKey, list[int]] = {}
    for event in sorted(pending, key=lambda e: e.id):
        pending_ids.setdefault(event.key, []).append(event.id)
    for call in plan.calls:
        assert call.event_ids == tuple(pending_ids[call.key])

    covered = [event_id for call in plan.calls for event_id in call.event_ids]
    all_ids = sorted(event.id for event in pending)
    assert sorted(covered + list(plan.settled_event_ids)) == all_ids
    assert list(plan.settled_event_ids) == sorted(plan.settled_event_ids)

    phases = [call.phase for call in plan.calls]
    assert phases == sorted(phases)


def assert_comment_creates_follow_their_post(plan: Plan, local: Records) -> None:
    position = {(call.op, call.key): index for index, call in enumerate(plan.calls)}
    for index, call in enumerate(plan.calls):
        if call.op is Op.CREATE and call.key.kind is Kind.COMMENT:
            post = EntityKey(Kind.POST, local[call.key]["postId"])
            assert position.get((Op.CREATE, post), -1) < index


# --- one sync --------------------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(initial_states, first_event_ids, operation_lists, st.randoms(use_true_random=False))
def test_any_history_delivered_by_the_plan_leaves_the_target_equal_to_local(
    comments_per_post, first_event_id, operations, rng
):
    db = LocalDatabase.synced(comments_per_post, first_event_id)
    target = db.snapshot()
    db.apply_all(operations)

    # The change log may be read in any order; the planner orders it by id.
    plan = plan_calls(rng.sample(db.events, len(db.events)))
    delivered = deliver(plan, db.records, target, rng)

    assert delivered == db.records
    assert_plan_is_minimal_and_complete(plan, db.events, net_changes(target, db.records))
    assert_comment_creates_follow_their_post(plan, db.records)


@PROPERTY_SETTINGS
@given(initial_states, first_event_ids, operation_lists)
def test_only_entities_created_and_deleted_again_are_settled_without_a_call(
    comments_per_post, first_event_id, operations
):
    db = LocalDatabase.synced(comments_per_post, first_event_id)
    existed = set(db.records)
    db.apply_all(operations)

    plan = plan_calls(db.events)

    settled_keys = {event.key for event in db.events if event.id in plan.settled_event_ids}
    touched = {event.key for event in db.events}
    assert settled_keys == {key for key in touched if key not in existed | db.records.keys()}
    assert settled_keys.isdisjoint(call.key for call in plan.calls)


# --- two syncs -------------------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(
    initial_states,
    first_event_ids,
    operation_lists,
    operation_lists,
    st.randoms(use_true_random=False),
)
def test_a_second_sync_sends_only_what_changed_since_the_first(
    comments_per_post, first_event_id, first_operations, later_operations, rng
):
    db = LocalDatabase.synced(comments_per_post, first_event_id)
    target = db.snapshot()
    db.apply_all(first_operations)
    first_plan = plan_calls(db.events)
    target = deliver(first_plan, db.records, target, rng)
    at_first_sync = db.snapshot()
    second_from = db.next_event_id

    db.apply_all(later_operations)
    pending = db.pending_since(second_from)
    second_plan = plan_calls(pending)
    target = deliver(second_plan, db.records, target, rng)

    assert target == db.records
    assert_plan_is_minimal_and_complete(
        second_plan, pending, net_changes(at_first_sync, db.records)
    )
    first_ids = {i for call in first_plan.calls for i in call.event_ids}
    first_ids |= set(first_plan.settled_event_ids)
    second_ids = {i for call in second_plan.calls for i in call.event_ids}
    assert first_ids.isdisjoint(second_ids | set(second_plan.settled_event_ids))


# --- a crash in the middle of a sync ---------------------------------------------------------

# What became of one call of a run that was killed: answered and its events marked, answered but
# killed before marking, sent without an answer (it may or may not have landed), or never sent.
OUTCOMES = ("marked", "landed", "lost", "unsent")


@PROPERTY_SETTINGS
@given(
    initial_states,
    first_event_ids,
    operation_lists,
    operation_lists,
    st.data(),
    st.randoms(use_true_random=False),
)
def test_a_run_killed_midway_then_a_new_plan_still_converges_without_duplicates(
    comments_per_post, first_event_id, first_operations, later_operations, data, rng
):
    db = LocalDatabase.synced(comments_per_post, first_event_id)
    target = db.snapshot()
    db.apply_all(first_operations)
    plan = plan_calls(db.events)

    waves = plan.waves()
    killed_in = data.draw(st.integers(min_value=0, max_value=len(waves)), label="killed in")
    marked: set[int] = set()
    if data.draw(st.booleans(), label="settled marked"):
        marked |= set(plan.settled_event_ids)
    maybe_on_target: set[EntityKey] = set()
    for index, calls in enumerate(waves):
        if index > killed_in:
            break
        choices = OUTCOMES if index == killed_in else ("marked", "landed")
        for call in calls:
            outcome = data.draw(st.sampled_from(choices), label=str(call))
            if outcome == "lost" and data.draw(st.booleans(), label="landed anyway"):
                outcome = "landed"
            if outcome in ("marked", "landed"):
                send(call, db.records, target, maybe_on_target=frozenset(maybe_on_target))
            if outcome == "marked":
                marked |= set(call.event_ids)
            elif outcome in ("landed", "lost") and call.op is Op.CREATE:
                maybe_on_target.add(call.key)

    db.apply_all(later_operations)
    pending = [event for event in db.events if event.id not in marked]
    retry = plan_calls(pending, presence=dict.fromkeys(maybe_on_target, Presence.UNCONFIRMED))
    target = deliver(
        retry,
        db.records,
        target,
        rng,
        maybe_on_target=frozenset(maybe_on_target),
        after_crash=True,
    )

    assert target == db.records


# --- full sync -------------------------------------------------------------------------------

keys = st.builds(EntityKey, st.sampled_from(list(Kind)), st.integers(min_value=1, max_value=8))
values = st.none() | st.integers(min_value=-2, max_value=2) | st.sampled_from(["", "a", "b"])
payloads = st.dictionaries(st.sampled_from(["title", "body", "userId"]), values, max_size=3)
target_payloads = st.dictionaries(
    st.sampled_from(["title", "body", "userId", "id", "extra"]), values, max_size=5
)


@PROPERTY_SETTINGS
@given(
    st.dictionaries(keys, payloads, max_size=10),
    st.dictionaries(keys, target_payloads, max_size=10),
    st.randoms(use_true_random=False),
)
def test_plan_full_turns_any_target_into_local_with_no_call_for_equal_records(local, remote, rng):
    plan = plan_full(local, remote)

    result = {key: dict(record) for key, record in remote.items()}
    for wave in plan.waves():
        for call in rng.sample(wave, len(wave)):
            if call.op is Op.DELETE:
                del result[call.key]
            else:
                result[call.key] = dict(local[call.key])

    assert result.keys() == local.keys()
    for key, record in local.items():
        # Every field we send is on the target with our value; extra target fields may remain.
        assert {name: result[key][name] for name in record if name in result[key]} == record
        assert record.keys() <= result[key].keys()
    called = [call.key for call in plan.calls]
    assert len(called) == len(set(called))
    for key in local.keys() & remote.keys():
        if payloads_equal(local[key], remote[key]):
            assert key not in called
    assert all(call.event_ids == () for call in plan.calls)


def target_graph(post_pks: list[int], comments: list[tuple[int, int]]) -> Records:
    records: Records = {
        EntityKey(Kind.POST, pk): {"title": f"p{pk}", "body": ""} for pk in post_pks
    }
    for pk, post_pk in comments:
        records[EntityKey(Kind.COMMENT, pk)] = {"postId": post_pk, "body": f"c{pk}"}
    return records


pks = st.lists(st.integers(min_value=1, max_value=6), unique=True, max_size=6)


@st.composite
def local_graphs(draw) -> Records:
    """Posts and comments where every comment's post exists, as in the database."""
    post_pks = draw(pks)
    comment_pks = draw(pks) if post_pks else []
    comments = [(pk, draw(st.sampled_from(post_pks))) for pk in comment_pks]
    return target_graph(post_pks, comments)


@st.composite
def drifted_graphs(draw) -> Records:
    """Anything the target may hold: comments of missing posts, edited copies, extra records."""
    post_pks = draw(pks)
    comments = [(pk, draw(st.integers(min_value=1, max_value=6))) for pk in draw(pks)]
    records = target_graph(post_pks, comments)
    for key in draw(st.lists(st.sampled_from(sorted(records)), unique=True)) if records else []:
        records[key] = {**records[key], "body": "drifted"}
    return records


@PROPERTY_SETTINGS
@given(local_graphs(), drifted_graphs(), st.randoms(use_true_random=False))
def test_plan_full_repairs_a_drifted_target_under_json_server_cascades(local, remote, rng):
    plan = plan_full(local, remote)

    delivered = deliver(plan, local, remote, rng)

    assert delivered == local
    assert net_changes(remote, local) == {call.key for call in plan.calls}
    assert_comment_creates_follow_their_post(plan, local)


def test_the_model_logs_a_post_delete_like_the_app_does():
    db = LocalDatabase.synced([3, 1], first_event_id=50)

    db.apply("delete_post", 0)

    assert [(event.id, str(event.key), event.type) for event in db.events] == [
        (50, "comment 1", EventType.DELETED),
        (51, "comment 2", EventType.DELETED),
        (52, "comment 3", EventType.DELETED),
        (53, "post 1", EventType.DELETED),
    ]
    assert db.keys(Kind.COMMENT) == [EntityKey(Kind.COMMENT, 4)]


def test_the_model_rejects_a_comment_delete_after_its_posts_delete():
    target = target_graph([1], [(1, 1)])

    send(Call(Op.DELETE, EntityKey(Kind.POST, 1)), {}, target)

    assert target == {}
    with pytest.raises(AssertionError, match="404"):
        send(Call(Op.DELETE, EntityKey(Kind.COMMENT, 1)), {}, target)
