"""Nothing lost, nothing sent twice: lost answers, id-assigning targets, the 1:1 mapping, parking,
no-op edits, held-back comments, a lost lock and targets that cascade deletes.

Each test drives the real service against the fake target and asserts what reached the target
and what the database remembers.
"""

import threading
import time

import pytest
from django.db import IntegrityError, connections, transaction

from news.models import Comment, Post
from sync.client import TargetApiClient
from sync.models import EntitySyncState
from sync.planner import Kind, Op
from sync.recording import recording_disabled
from sync.syncing import outcomes
from sync.target import TABLES
from testing.run_lock import lose_the_run_lock
from testing.sync import (
    expected_target,
    pending_count,
    post_record,
    remote_ids,
    state_of,
    target_state,
    writes,
)
from testing.waiting import wait_for

pytestmark = [pytest.mark.django_db, pytest.mark.timeout(60)]


def ours(target, foreign: set[int] = frozenset()) -> dict:
    """The target's records without the foreign posts it held before the test."""
    state = target_state(target)
    return {
        "posts": [r for r in state["posts"] if r["id"] not in foreign],
        "comments": state["comments"],
    }


FOREIGN = [{"id": n, "userId": 9, "title": f"theirs {n}", "body": "not ours"} for n in range(1, 8)]


# --- 2. A create whose outcome is unknown is resolved against what the target holds ------------


def test_an_earlier_copy_of_a_create_is_found_and_made_equal_with_one_call(
    fake_target, make_post, sync
):
    post = make_post(title="as first sent")
    fake_target.drop(method="POST", times=1, after_processing=True)
    fake_target.fail(503, method="GET")  # the lookup fails too: the outcome stays unknown
    assert not sync().ok
    assert state_of(post).create_unconfirmed
    post.title = "edited since"
    post.save()
    fake_target.clear_faults()
    fake_target.reset_log()

    report = sync()

    assert report.ok
    assert writes(fake_target) == [("PUT", f"/posts/{post.pk}")]
    assert (report.calls[Op.CREATE], report.calls_made) == (1, 1)
    assert target_state(fake_target) == expected_target()
    assert pending_count() == 0


def test_a_duplicate_id_answer_never_takes_a_record_that_is_not_ours(fake_target, make_post, sync):
    post = make_post(title="ours")
    theirs = {"id": post.pk, "userId": 9, "title": "theirs", "body": "someone else's"}
    fake_target.load(posts=[theirs], comments=[])

    report = sync()

    assert not report.ok
    assert fake_target.posts[post.pk] == theirs  # neither taken nor overwritten
    assert "not found on the target yet" in report.failed[0].error
    assert state_of(post).remote_id is None
    assert pending_count() == 1


# --- 3. Targets that assign their own ids get no duplicates -------------------------------------


@pytest.fixture
def assigning_target(fake_target):
    """A target that picks its own ids and already holds records of its own."""
    fake_target.assign_ids = True
    fake_target.load(posts=FOREIGN, comments=[])
    return fake_target


def test_an_id_assigning_target_gets_no_duplicate_after_lost_answers(
    assigning_target, make_post, make_comment, sync
):
    posts = [make_post(title=f"ours {n}") for n in range(5)]
    comments = [make_comment(post, body=f"comment {n}") for n, post in enumerate(posts)]
    assigning_target.drop(method="POST", share=0.5, after_processing=True)
    assigning_target.drop(method="POST", times=2)  # and two never arrive

    report = sync(concurrency=4)

    assert report.ok, report.failed
    assert ours(assigning_target, {r["id"] for r in FOREIGN}) == expected_target()
    assert [assigning_target.posts[r["id"]] for r in FOREIGN] == FOREIGN
    assert len(assigning_target.posts) == len(FOREIGN) + len(posts)
    assert len(assigning_target.comments) == len(comments)
    assert sorted(remote_ids(Kind.POST)) == sorted(p.pk for p in posts)


def test_a_lookup_never_takes_a_record_of_the_target_under_our_id(
    assigning_target, make_post, sync
):
    """The target holds a record of its own under our post's id: a GET by id would take it."""
    post = make_post(title="ours")
    theirs = {"id": post.pk, "userId": 9, "title": "theirs", "body": "not ours"}
    held = [*(r for r in FOREIGN if r["id"] != post.pk), theirs]
    assigning_target.load(posts=held, comments=[])
    assigning_target.drop(method="POST", times=1, after_processing=True)

    assert sync().ok

    assert assigning_target.posts[post.pk] == theirs
    remote_id = state_of(post).remote_id
    assert remote_id not in {r["id"] for r in held}
    assert assigning_target.posts[remote_id] == post_record(post, remote_id=remote_id)
    assert len(assigning_target.posts) == len(held) + 1


def test_identical_new_posts_each_keep_their_own_copy(assigning_target, make_post, sync):
    twins = [make_post(title="same", body="same") for _ in range(3)]
    assigning_target.drop(method="POST", times=3, after_processing=True)

    assert sync(concurrency=3).ok

    held = remote_ids(Kind.POST)
    assert sorted(held) == sorted(p.pk for p in twins)
    assert len(set(held.values())) == 3
    assert len(assigning_target.posts) == len(FOREIGN) + 3


# --- 4. The remote-id mapping stays one-to-one -------------------------------------------------


def test_the_database_refuses_two_entities_holding_one_record(db):
    EntitySyncState.objects.create(
        entity_table="news_post", entity_pk=1, remote_id=101, remote_key="101"
    )
    with pytest.raises(IntegrityError), transaction.atomic():
        # "101" is the same record as 101 to the target.
        EntitySyncState.objects.create(
            entity_table="news_post", entity_pk=2, remote_id="101", remote_key="101"
        )
    # Another kind may use the same id, and any number of entities may hold none.
    EntitySyncState.objects.create(
        entity_table="news_comment", entity_pk=2, remote_id=101, remote_key="101"
    )
    EntitySyncState.objects.create(entity_table="news_post", entity_pk=3, remote_id=None)
    EntitySyncState.objects.create(entity_table="news_post", entity_pk=4, remote_id=None)


def test_an_answer_with_an_id_another_entity_holds_is_a_conflict_not_a_mapping(
    fake_target, make_post, sync
):
    first, second = make_post(title="first"), make_post(title="second")
    fake_target.answer(201, body={"id": 101}, method="POST")

    report = sync()

    assert remote_ids(Kind.POST) == {first.pk: 101}
    [failed] = report.failed
    assert failed.entity.pk == second.pk and failed.permanent
    assert failed.error == (
        f"target conflict: the target answered with id 101, which post {first.pk} holds; not stored"
    )
    state = state_of(second)
    assert (state.remote_id, state.attempts, state.create_unconfirmed) == (None, 1, False)
    assert "target conflict" in state.last_error
    assert pending_count() == 1
    assert any("does not keep what it is sent" in notice for notice in report.notices)


def test_full_forgets_only_the_mapping_of_what_it_deletes(fake_target, make_post, sync):
    post = make_post(title="mapped elsewhere")
    remote_id = post.pk + 1000
    outcomes.upsert_states(
        [outcomes.delivered_state(key_of(post), post_record(post, remote_id=remote_id))],
        outcomes.DELIVERED_FIELDS,
    )
    post.save()  # a pending change, so a full run has an event to settle
    extra = {"id": post.pk, "userId": 9, "title": "extra", "body": "not ours"}
    fake_target.load(posts=[post_record(post, remote_id=remote_id), extra], comments=[])

    assert sync(full=True).ok

    assert writes(fake_target) == [("DELETE", f"/posts/{post.pk}")]
    assert state_of(post).remote_id == remote_id
    post.title = "edited after the full run"
    post.save()
    fake_target.reset_log()
    assert sync().ok
    assert writes(fake_target) == [("PUT", f"/posts/{remote_id}")]
    assert target_state(fake_target) == expected_target()


def test_full_keys_rows_by_their_ids_on_the_target_without_overwriting_each_other(
    assigning_target, make_post, sync
):
    first = make_post(title="first")
    assert sync().ok
    taken = state_of(first).remote_id  # the target's own choice
    second = Post.objects.create(id=taken, user_id=1, title="second", body="")
    assigning_target.reset_log()

    report = sync(full=True)

    assert report.ok, report.failed
    assert target_state(assigning_target) == expected_target()  # the target's own are gone
    assert state_of(first).remote_id == taken
    assert state_of(second).remote_id not in {None, taken}
    assert [w for w in writes(assigning_target) if w[0] != "DELETE"] == [("POST", "/posts")]


def key_of(obj):
    from sync.planner import EntityKey

    return EntityKey(Kind.POST if isinstance(obj, Post) else Kind.COMMENT, obj.pk)


# --- 5. A target that keeps nothing (the public JSONPlaceholder) -------------------------------


def test_a_target_that_keeps_nothing_corrupts_no_mapping_and_runs_stay_bounded(
    fake_target, make_post, sync
):
    fake_target.stores_nothing = True
    fake_target.load_generated(100, comments_per_post=0)
    posts = [make_post(title=f"new {n}") for n in range(20)]

    first = sync(max_attempts=2)

    assert remote_ids(Kind.POST) == {posts[0].pk: 101}
    assert len(first.failed) == 19
    assert all("target conflict" in f.error for f in first.failed)
    assert len(first.notices) == 1 and "does not keep what it is sent" in first.notices[0]

    for post in posts:
        post.title = "edited"
        post.save()
    calls = []
    for _ in range(4):
        fake_target.reset_log()
        sync(max_attempts=2)
        calls.append(len(fake_target.calls()))
    parked = EntitySyncState.objects.filter(parked_at__isnull=False).count()
    assert parked == 20
    assert calls[-1] == 0, calls  # everything parked: nothing is sent for ever
    assert max(calls) <= 20 * 3  # a PUT retried by the client, a POST and a lookup at most
    assert len(set(remote_ids(Kind.POST).values())) == len(remote_ids(Kind.POST))


# --- 6. Failures that never go away are parked; no run grows without bound --------------------


def test_an_entity_answered_5xx_run_after_run_is_parked_while_others_get_through(
    fake_target, seed, sync
):
    [stuck, fine], _ = seed(2)
    fake_target.fail(500, method="PUT", path=f"/posts/{stuck.pk}")
    for attempt in (1, 2):
        stuck.title = fine.title = f"edit {attempt}"
        stuck.save()
        fine.save()
        report = sync(max_attempts=2)
        assert [f.entity.pk for f in report.failed] == [stuck.pk]
        assert state_of(stuck).attempts == attempt
    assert state_of(stuck).parked_at is not None

    fake_target.reset_log()
    report = sync(max_attempts=2)

    assert fake_target.calls() == []
    assert [f.error for f in report.failed] == ["parked after repeated failures"]


def test_a_target_answering_5xx_to_everything_parks_nothing(fake_target, seed, sync):
    posts, _ = seed(3)
    fake_target.fail(503)
    for _ in range(3):
        for post in posts:
            post.title = "edited"
            post.save()
        assert not sync(max_attempts=1).ok

    assert not EntitySyncState.objects.filter(parked_at__isnull=False).exists()
    assert not EntitySyncState.objects.filter(attempts__gt=0).exists()


def test_a_run_starts_no_call_once_its_time_budget_is_used_up(fake_target, seed, sync):
    posts, _ = seed(30)
    for post in posts:
        post.title = "edited"
        post.save()
    fake_target.latency = 0.1

    report = sync(time_budget=0.5)

    assert report.stopped_early == "stopped when its time budget of 0.5 s was used up"
    sent = len(fake_target.calls())
    assert 2 <= sent <= 8
    assert pending_count() == 30 - sent
    assert report.calls_made == sent
    fake_target.latency = 0
    assert sync().ok
    assert target_state(fake_target) == expected_target()


def test_a_run_against_a_target_that_drips_its_answers_ends_within_its_budget_and_one_timeout(
    fake_target, seed, sync
):
    posts, _ = seed(10)
    for post in posts:
        post.title = "edited"
        post.save()
    fake_target.drip(1, every=0.05, method="PUT")  # each answer takes about 8 s
    client = TargetApiClient(
        base_url=fake_target.url, timeout=0.5, retries=2, backoff_factor=0.01, backoff_max=0.02
    )

    started = time.monotonic()
    with client:
        report = sync(client=client, concurrency=2, time_budget=0.3)
    took = time.monotonic() - started

    assert took < 0.3 + 0.5 + 0.5
    assert report.stopped_early == "stopped when its time budget of 0.3 s was used up"
    assert len(fake_target.calls("PUT")) == 2  # the two under way, neither tried again
    assert pending_count() == 10
    fake_target.clear_faults()
    assert sync().ok
    assert target_state(fake_target) == expected_target()


def test_creates_a_stopped_run_never_sent_cost_the_next_run_no_lookup(fake_target, make_post, sync):
    posts = [make_post(title=f"new {n}") for n in range(40)]
    fake_target.latency = 0.1

    report = sync(concurrency=2, time_budget=0.5)  # batches of 8 and 16 made ready, a few sent

    assert report.stopped_early
    sent = {r.body["id"] for r in fake_target.calls("POST")}
    assert 2 <= len(sent) < 24
    fake_target.latency = 0
    fake_target.reset_log()
    assert sync().ok
    # One POST for each create not sent before, no lookup: nothing of them can be on the target.
    assert [r.method for r in fake_target.calls()] == ["POST"] * (40 - len(sent))
    assert target_state(fake_target) == expected_target()
    assert sorted(sent | {r.body["id"] for r in fake_target.calls()}) == [p.pk for p in posts]


# --- 7. No call for a change that changes nothing ----------------------------------------------


def test_saves_and_edits_that_leave_the_target_record_as_it_was_send_nothing(
    fake_target, seed, api_client, sync
):
    [post, reverted, changed], [comment, *_] = seed(3, comments_per_post=1)
    post.save()  # nothing changed
    comment.save()
    reverted.title = "for a moment"
    reverted.save()
    reverted.title = "post 1"
    reverted.save()
    response = api_client.patch(f"/news/posts/{post.pk}/", {"title": post.title}, format="json")
    assert response.status_code in (200, 403)
    changed.body = "really changed"
    changed.save()

    report = sync()

    assert report.ok
    assert writes(fake_target) == [("PUT", f"/posts/{changed.pk}")]
    assert (report.calls_made, report.entities_unchanged) == (1, 3)
    assert report.summary().startswith(
        "Synced 4 entities with 1 calls (0 created, 1 updated, 0 deleted), 3 needing no call;"
    )
    assert pending_count() == 0


def test_a_create_whose_row_is_gone_is_counted_as_synced_not_as_needing_no_call(
    fake_target, make_post, sync
):
    logged, gone = make_post(title="created and deleted"), make_post(title="row gone")
    logged.delete()  # both events pending: the plan settles it
    with recording_disabled():
        Post.objects.filter(pk=gone.pk).delete()  # its delete not logged yet: the run finds out

    report = sync()

    # Neither was ever on the target, so neither is "already as the target holds it".
    assert (report.calls_made, report.entities_synced, report.entities_unchanged) == (0, 2, 0)
    assert fake_target.calls() == []
    assert pending_count() == 0


# --- 8. Small ones ------------------------------------------------------------------------------


def test_a_held_back_comment_is_not_flagged_and_costs_no_call_when_deleted(
    fake_target, make_post, make_comment, sync
):
    post = make_post()
    comment = make_comment(post)
    fake_target.fail(400, method="POST", path="/posts", times=1)
    sync()
    assert state_of(comment) is None or not state_of(comment).create_unconfirmed
    post.delete()
    fake_target.reset_log()

    assert sync().ok

    assert fake_target.calls() == []
    assert pending_count() == 0


@pytest.mark.django_db(transaction=True)
def test_a_target_that_cascades_deletes_gets_one_call_for_a_post_and_its_comments(
    fake_target, seed, sync
):
    [post, other], comments = seed(2, comments_per_post=5)
    post_pk = post.pk
    post.delete()
    Comment.objects.filter(pk=comments[5].pk).delete()  # a comment of the other post

    report = sync(cascade_deletes=True)

    assert report.ok
    assert writes(fake_target) == [
        ("DELETE", f"/comments/{comments[5].pk}"),
        ("DELETE", f"/posts/{post_pk}"),
    ]
    assert report.entities_synced == 7
    assert target_state(fake_target) == expected_target()
    assert pending_count() == 0
    assert not EntitySyncState.objects.filter(
        entity_table=TABLES[Kind.COMMENT], entity_pk__in=[c.pk for c in comments[:6]]
    ).exists()


def test_by_default_comments_are_deleted_one_by_one_before_their_post(fake_target, seed, sync):
    [post], comments = seed(1, comments_per_post=3)
    post_pk, comment_pks = post.pk, [c.pk for c in comments]
    post.delete()

    assert sync().ok

    assert writes(fake_target) == [
        *[("DELETE", f"/comments/{pk}") for pk in comment_pks],
        ("DELETE", f"/posts/{post_pk}"),
    ]


@pytest.mark.django_db(transaction=True)
def test_a_run_that_loses_its_lock_stops_sending_at_once_and_says_so(fake_target, seed, sync):
    posts, _ = seed(40)
    for post in posts:
        post.title = "edited"
        post.save()
    fake_target.latency = 0.05
    outcome = {}

    def run() -> None:
        try:
            outcome["report"] = sync(concurrency=2)
        finally:
            connections.close_all()

    runner = threading.Thread(target=run)
    runner.start()
    wait_for(lambda: len(fake_target.calls()) >= 5)
    lose_the_run_lock()
    sent_when_lost = len(fake_target.calls())
    runner.join(30)

    report = outcome["report"]
    assert report.stopped_early == (
        "stopped: it lost its run lock (the database session that held it ended)"
    )
    # Only what was under way (two calls at a time) reaches the target after the loss.
    assert len(fake_target.calls()) <= sent_when_lost + 2
    assert not report.ok
    fake_target.latency = 0
    assert sync().ok
    assert target_state(fake_target) == expected_target()
    assert pending_count() == 0


def test_rows_imported_from_the_target_need_no_call_until_they_really_change(
    fake_target, target_client, sync
):
    from sync.importing import import_initial_data

    fake_target.load_generated(3, comments_per_post=2)
    import_initial_data(client=target_client)
    post, comment = Post.objects.first(), Comment.objects.first()
    post.save()
    comment.save()

    report = sync()

    assert (report.calls_made, report.entities_unchanged) == (0, 2)
    post.title = "changed after the import"
    post.save()
    fake_target.reset_log()
    assert sync().calls_made == 1
    assert writes(fake_target) == [("PUT", f"/posts/{post.pk}")]


# --- Found by an adversarial soak -----------------------------------------------------------


def test_identical_posts_left_unconfirmed_in_different_batches_each_get_their_own_record(
    fake_target, make_post, sync
):
    first, second = make_post(title="twin", body="twin"), make_post(title="twin", body="twin")
    fake_target.fail(500, method="POST", times=1)  # the first POST: not applied
    fake_target.drop(method="POST", times=1, after_processing=True)  # the second: applied
    fake_target.fail(503, method="GET")  # and every lookup fails: both stay unconfirmed
    assert not sync(batch_size=1).ok
    fake_target.clear_faults()

    report = sync(batch_size=1)

    assert report.ok, report.failed
    assert remote_ids(Kind.POST) == {first.pk: first.pk, second.pk: second.pk}
    assert target_state(fake_target) == expected_target()


def test_a_post_answered_after_the_timeout_is_not_sent_again_in_the_same_run(
    assigning_target, make_post, fake_target
):
    from sync.client import TargetApiClient
    from sync.syncing import SyncOptions, sync_changes

    post = make_post(title="slow")
    assigning_target.stall(0.6, method="POST", times=1)
    with TargetApiClient(base_url=fake_target.url, timeout=0.2, retries=1) as slow_client:
        report = sync_changes(client=slow_client, options=SyncOptions(concurrency=1))
    wait_for(lambda: fake_target.in_flight == 0)

    assert not report.ok
    assert "no answer within 0.2 s" in report.failed[0].error
    assert len(fake_target.calls("POST")) == 1
    with TargetApiClient(base_url=fake_target.url, timeout=2.0) as client:
        assert sync_changes(client=client).ok
    assert len(fake_target.calls("POST")) == 1
    assert ours(assigning_target, {r["id"] for r in FOREIGN}) == expected_target()
    assert state_of(post).remote_id is not None


def test_a_row_whose_update_was_logged_after_its_delete_is_deleted_on_the_target(
    fake_target, seed, sync
):
    from sync.planner import EventType
    from sync.recording import record_events

    [post], _ = seed(1)
    post_pk = post.pk
    post.delete()
    # An update that committed between the delete's event and its DELETE statement.
    record_events(Post, [post_pk], EventType.UPDATED, using="default")

    report = sync()

    assert report.ok
    assert writes(fake_target) == [("DELETE", f"/posts/{post_pk}")]
    assert target_state(fake_target) == expected_target()
    assert pending_count() == 0


def test_an_edit_whose_put_may_have_landed_is_sent_again_after_a_revert(fake_target, seed, sync):
    [post], _ = seed(1)
    original = post.title
    post.title = "for a moment"
    post.save()
    fake_target.fail(500, method="PUT", after_processing=True)  # applied, answered 500
    assert not sync().ok
    assert fake_target.posts[post.pk]["title"] == "for a moment"
    fake_target.clear_faults()
    post.title = original
    post.save()

    assert sync().ok

    assert fake_target.posts[post.pk]["title"] == original
    assert target_state(fake_target) == expected_target()


def test_a_lookup_takes_our_copy_not_an_identical_record_the_target_had(
    assigning_target, make_post, sync
):
    theirs = {"id": 20, "userId": 1, "title": "same", "body": "same"}
    assigning_target.load(posts=[*FOREIGN, theirs], comments=[])
    post = make_post(title="same", body="same")
    assigning_target.drop(method="POST", times=1, after_processing=True)

    assert sync().ok

    assert state_of(post).remote_id == 21
    post.delete()
    assert sync().ok
    assert assigning_target.posts[20] == theirs
    assert 21 not in assigning_target.posts


def test_an_outage_of_lookups_alone_parks_nothing(fake_target, seed, make_post, sync):
    [other], _ = seed(1)
    post = make_post()
    fake_target.drop(method="POST", times=1, after_processing=True)
    fake_target.fail(500, method="GET")
    for _ in range(3):
        other.title = f"{other.title}!"  # the target answers its PUTs meanwhile
        other.save()
        assert not sync(max_attempts=2).ok
    assert state_of(post).parked_at is None
    fake_target.clear_faults()

    assert sync(max_attempts=2).ok
    assert target_state(fake_target) == expected_target()
