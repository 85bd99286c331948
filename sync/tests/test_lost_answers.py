"""A call whose answer was lost: its outcome is unknown, so a create is looked up by its content
before it is sent again, and a lookup takes only a record that can be ours.

Every test drives the real service against the fake target and asserts what reached the target
(its request log and state) and what the database remembers (pending events, sync state).

The rules a round of lookups follows are tabled in test_decisions.py; lost answers on targets of
other kinds (string ids, answers without ids, rewriting) in test_sync_targets.py; a run killed
before its answers came in, in test_crashes.py.
"""

import threading
from collections.abc import Callable

import pytest

from news.models import Comment, Post
from sync.client import TargetApiClient
from sync.models import EntitySyncState, ModelEvent
from sync.planner import Kind, Op
from sync.recording import recording_disabled
from testing.sync import (
    FOREIGN_POSTS,
    delivered,
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


# --- A create whose answer was lost is looked up, not sent again ---------------------------------


def test_a_closed_connection_on_a_post_is_checked_and_sent_again(fake_target, make_post, sync):
    post = make_post()
    fake_target.drop(method="POST", times=1)

    assert sync().ok
    assert [(r.method, r.path, r.status) for r in fake_target.calls()] == [
        ("POST", "/posts", None),
        ("GET", "/posts", 200),  # looked for by its content: not there
        ("GET", "/posts", 200),  # again once it can no longer land (one timeout): not there
        ("POST", "/posts", 201),
    ]
    assert fake_target.calls("GET")[0].query == {
        "userId": [str(post.user_id)],
        "title": [post.title],
        "body": [post.body],
    }
    assert target_state(fake_target) == expected_target()
    assert delivered(post)


@pytest.mark.parametrize("fault", ["502", "504", "dropped"])
def test_a_post_the_target_applies_just_after_failing_it_is_not_duplicated(
    assigning_target, fake_target, make_post, target_client, sync, fault
):
    # A proxy gave up (or the connection was cut) while the server behind it went on.
    post = make_post(title="applied late")
    if fault == "dropped":
        fake_target.drop(method="POST", times=1, applied_after=0.3)
    else:
        fake_target.fail(int(fault), method="POST", times=1, applied_after=0.3)

    report = sync()
    wait_for(lambda: fake_target.in_flight == 0)

    assert report.ok, report.failed
    mine = [r for r in assigning_target.posts.values() if r["title"] == "applied late"]
    assert len(mine) == 1, fake_target.calls()
    assert len(fake_target.calls("POST")) == 1
    assert state_of(post).remote_id == mine[0]["id"]
    assert sync().calls_made == 0
    assert ours(assigning_target, {r["id"] for r in FOREIGN_POSTS}) == expected_target()


def test_a_run_stopped_while_it_waits_for_a_post_that_may_land_keeps_it_for_the_next(
    assigning_target, fake_target, make_post, target_client
):
    from sync.syncing import SyncOptions, sync_changes
    from sync.syncing.dispatch import StopSignal

    post = make_post(title="applied late")
    fake_target.fail(502, method="POST", times=1, applied_after=0.3)
    stop = StopSignal()
    # The stop comes once the POST was answered 502 and looked for: while the run waits.
    watcher = threading.Thread(
        target=lambda: (
            wait_for(lambda: len(fake_target.calls("GET")) == 1, timeout=10),
            stop.set("stopped: the test stopped it"),
        )
    )
    watcher.start()
    report = sync_changes(client=target_client, options=SyncOptions(concurrency=1), stop=stop)
    watcher.join()
    wait_for(lambda: len(assigning_target.posts) == len(FOREIGN_POSTS) + 1, timeout=5)

    assert not report.ok
    assert state_of(post).create_unconfirmed  # the POST went: the next run looks first
    assert report.failed[0].error.startswith("not looked for: stopped"), report.failed
    assert sync_changes(client=target_client).ok
    mine = [r for r in assigning_target.posts.values() if r["title"] == "applied late"]
    assert len(mine) == 1, fake_target.calls()
    assert len(fake_target.calls("POST")) == 1
    assert ours(assigning_target, {r["id"] for r in FOREIGN_POSTS}) == expected_target()


def test_a_post_that_may_land_is_waited_for_as_long_as_the_run_that_sent_it_allowed(
    assigning_target, fake_target, make_post
):
    from sync.syncing import SyncOptions, sync_changes

    post = make_post(title="applied late")
    fake_target.fail(502, method="POST", times=1, applied_after=1.0)
    # Sent by a run whose calls waited 3 s for their answers, which ended before it could look
    # again; then a run whose calls wait 0.2 s.
    with TargetApiClient(base_url=fake_target.url, timeout=3.0, retries=0) as patient:
        first = sync_changes(client=patient, options=SyncOptions(time_budget=0.3))
    with TargetApiClient(base_url=fake_target.url, timeout=0.2, retries=0) as hasty:
        second = sync_changes(client=hasty)

    assert not first.ok and first.calls_made == 0
    assert second.ok, second.failed
    mine = [r for r in assigning_target.posts.values() if r["title"] == "applied late"]
    assert len(mine) == 1, fake_target.calls()
    assert len(fake_target.calls("POST")) == 1
    assert state_of(post).remote_id == mine[0]["id"]


def test_a_post_applied_but_unanswered_is_found_and_not_duplicated(fake_target, make_post, sync):
    post = make_post()
    fake_target.drop(method="POST", times=1, after_processing=True)

    assert sync().ok
    assert [(r.method, r.status) for r in fake_target.calls()] == [("POST", None), ("GET", 200)]
    assert target_state(fake_target) == expected_target()
    assert pending_count() == 0
    assert delivered(post)


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


def test_a_copy_made_equal_by_a_put_whose_answer_was_lost_is_not_created_again(
    fake_target, make_post, sync
):
    """The PUT that makes an earlier copy ours lands, its answer is lost, and the post is edited
    again: the next run finds the copy by what the PUT sent, not only by what the POST sent."""
    post = make_post(title="as first sent")
    fake_target.drop(method="POST", times=1, after_processing=True)
    fake_target.fail(503, method="GET")
    assert not sync().ok
    post.title = "edited once"
    post.save()
    fake_target.clear_faults()
    fake_target.drop(method="PUT", after_processing=True)  # each attempt lands, unanswered
    assert not sync().ok
    assert fake_target.state()["posts"][-1]["title"] == "edited once"
    post.title = "edited twice"
    post.save()
    fake_target.clear_faults()
    fake_target.reset_log()

    report = sync()

    assert report.ok, report.failed
    assert writes(fake_target) == [("PUT", f"/posts/{post.pk}")]
    assert target_state(fake_target) == expected_target()
    assert pending_count() == 0


def test_a_post_answered_after_the_timeout_is_not_sent_again_in_the_same_run(
    assigning_target, make_post, fake_target
):
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
    assert ours(assigning_target, {r["id"] for r in FOREIGN_POSTS}) == expected_target()
    assert state_of(post).remote_id is not None


def test_more_lost_answers_than_a_batch_are_decided_as_they_come_without_duplicates(
    fake_target, make_post, sync
):
    posts = [make_post(title=f"post {n}") for n in range(30)]
    fake_target.drop(method="POST", after_processing=True)  # every create applied, unanswered

    report = sync(concurrency=2, batch_size=5)

    assert report.ok and report.calls_made == 30
    assert sorted(r.body["id"] for r in fake_target.calls("POST")) == [p.pk for p in posts]
    assert len(fake_target.calls("GET")) == 30  # one lookup each
    assert target_state(fake_target) == expected_target()
    assert pending_count() == 0
    assert not EntitySyncState.objects.filter(create_unconfirmed=True).exists()


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


# --- An update whose answer was lost is sent again -----------------------------------------------


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


# --- A lookup takes only a record that can be ours -----------------------------------------------


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


def test_an_id_assigning_target_gets_no_duplicate_after_lost_answers(
    assigning_target, make_post, make_comment, sync
):
    posts = [make_post(title=f"ours {n}") for n in range(5)]
    comments = [make_comment(post, body=f"comment {n}") for n, post in enumerate(posts)]
    assigning_target.drop(method="POST", share=0.5, after_processing=True)
    assigning_target.drop(method="POST", times=2)  # and two never arrive

    report = sync(concurrency=4)

    assert report.ok, report.failed
    assert ours(assigning_target, {r["id"] for r in FOREIGN_POSTS}) == expected_target()
    assert [assigning_target.posts[r["id"]] for r in FOREIGN_POSTS] == FOREIGN_POSTS
    assert len(assigning_target.posts) == len(FOREIGN_POSTS) + len(posts)
    assert len(assigning_target.comments) == len(comments)
    assert sorted(remote_ids(Kind.POST)) == sorted(p.pk for p in posts)


def test_an_id_assigning_target_keeps_one_copy_when_the_put_that_made_it_ours_went_unanswered(
    assigning_target, make_comment, make_post, sync
):
    comment = make_comment(make_post(), body="as first sent")
    sync()
    assigning_target.drop(method="POST", times=1, after_processing=True)
    assigning_target.fail(503, method="GET")
    second = make_comment(comment.post, body="second, as first sent")
    assert not sync().ok
    second.body = "edited once"
    second.save()
    assigning_target.clear_faults()
    assigning_target.drop(method="PUT", after_processing=True)
    assert not sync().ok
    second.body = "edited twice"
    second.save()
    assigning_target.clear_faults()

    report = sync()

    assert report.ok, report.failed
    assert sorted(c["body"] for c in assigning_target.comments.values()) == [
        "as first sent",
        "edited twice",
    ]
    assert ours(assigning_target, {r["id"] for r in FOREIGN_POSTS}) == expected_target()


def test_a_lookup_never_takes_a_record_of_the_target_under_our_id(
    assigning_target, make_post, sync
):
    """The target holds a record of its own under our post's id: a GET by id would take it."""
    post = make_post(title="ours")
    theirs = {"id": post.pk, "userId": 9, "title": "theirs", "body": "not ours"}
    held = [*(r for r in FOREIGN_POSTS if r["id"] != post.pk), theirs]
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
    assert len(assigning_target.posts) == len(FOREIGN_POSTS) + 3


def test_a_lookup_takes_our_copy_not_an_identical_record_the_target_had(
    assigning_target, make_post, sync
):
    theirs = {"id": 20, "userId": 1, "title": "same", "body": "same"}
    assigning_target.load(posts=[*FOREIGN_POSTS, theirs], comments=[])
    post = make_post(title="same", body="same")
    assigning_target.drop(method="POST", times=1, after_processing=True)

    assert sync().ok

    assert state_of(post).remote_id == 21
    post.delete()
    assert sync().ok
    assert assigning_target.posts[20] == theirs
    assert 21 not in assigning_target.posts


# --- Lookups in a run that also deletes ----------------------------------------------------------


def unconfirmed_twins(fake_target, sync, make: Callable[[str], object]) -> tuple[object, object]:
    """Two entities of the same content on a target that picks its own ids: the first one's
    create landed but is unconfirmed (its answer and its lookup failed), the second is mapped."""
    fake_target.assign_ids = True
    first, second = make("twin"), make("twin")
    fake_target.fail(500, method="POST", times=1, after_processing=True)
    fake_target.fail(503, method="GET")
    assert not sync(concurrency=1).ok
    fake_target.clear_faults()
    assert state_of(first).create_unconfirmed and state_of(second).remote_id is not None
    return first, second


@pytest.mark.parametrize("batch_size", [1, 500])
@pytest.mark.parametrize("kind", ["post", "comment"])
def test_a_lookup_never_takes_a_record_that_another_delete_removed_meanwhile(
    fake_target, seed, make_post, make_comment, sync, kind, batch_size
):
    [post], _ = seed(1)
    with recording_disabled():  # our next ids are not the ones the target hands out
        for _ in range(5):
            make_post(title="gap").delete()
            Comment.objects.create(post=post, name="gap", email="g@example.com").delete()
    if kind == "post":
        first, second = unconfirmed_twins(fake_target, sync, lambda text: make_post(title=text))
    else:
        first, second = unconfirmed_twins(
            fake_target, sync, lambda text: make_comment(post, body=text)
        )
    first.delete()  # its copy is looked up, then deleted
    second.delete()  # a DELETE of its id, in the same phase

    assert sync(concurrency=4, batch_size=batch_size).ok
    assert target_state(fake_target) == expected_target(), "a copy left on the target"
    assert pending_count() == 0


def test_a_lookup_takes_a_record_under_an_id_the_target_gave_again_after_a_delete(
    fake_target, seed, sync
):
    fake_target.assign_ids = True
    [lost, kept, removed], _ = seed(3)
    fake_target.posts.pop(lost.pk)  # gone from the target behind our back
    lost.title = "edited"
    lost.save()  # a PUT answered 404, then a POST
    with recording_disabled():
        Post.objects.filter(pk=removed.pk).delete()  # its edit pending, its row gone: a DELETE
    ModelEvent.objects.create(entity_table="news_post", entity_pk=removed.pk, type="UPDATED")
    # The POST that creates `lost` again gets the highest id, freed by that DELETE; its answer
    # is lost, so a lookup finds the record after the DELETE was answered.
    fake_target.drop(method="POST", times=1, after_processing=True)

    report = sync(concurrency=2)

    assert report.ok, report.failed
    assert [r.status for r in fake_target.calls("POST")] == [None]
    assert target_state(fake_target) == expected_target(), "a duplicate on the target"
    assert state_of(lost).remote_id == removed.pk
    assert pending_count() == 0


def one_landed_one_lost(fake_target, make_post, sync, gone_title: str, kept_title: str) -> Post:
    """On a target that picks its own ids: a post whose create landed as record 1 but was never
    confirmed, its row since gone (its create still pending), and one whose create never
    landed (unconfirmed too); returns that one."""
    fake_target.assign_ids = True
    with recording_disabled():  # our next ids are not the ones the target hands out
        for _ in range(5):
            make_post(title="gap").delete()
    gone, kept = make_post(title=gone_title), make_post(title=kept_title)
    fake_target.fail(500, method="POST", times=1, after_processing=True)  # `gone` lands as 1
    fake_target.drop(method="POST", times=1)  # `kept` never lands
    fake_target.fail(503, method="GET")  # and neither is confirmed
    assert not sync(concurrency=1).ok
    fake_target.clear_faults()
    with recording_disabled():
        Post.objects.filter(pk=gone.pk).delete()
    return kept


def test_a_lookup_made_while_a_delete_of_its_id_is_answered_looks_again(
    fake_target, make_post, sync
):
    kept = one_landed_one_lost(fake_target, make_post, sync, "gone", "kept")
    # The next run deletes record 1 and creates `kept` in the same round. The DELETE is applied
    # at once but answered late; the POST is applied after it, under the same id 1 (the target
    # gives the highest id plus one), and its answer is lost. Its lookup, made while the
    # DELETE's answer is on its way, cannot tell which record 1 it saw.
    fake_target.stall(0.5, method="DELETE", times=1, after_processing=True)
    fake_target.drop(method="POST", times=1, after_processing=True, delay=0.2)
    fake_target.reset_log()

    report = sync(concurrency=2)

    assert report.ok, report.failed
    assert len(fake_target.calls("POST")) == 1, "created twice"
    assert target_state(fake_target) == expected_target()
    assert state_of(kept).remote_id == 1


def test_a_record_whose_delete_failed_is_not_taken_by_a_lookup_that_may_have_seen_it_go(
    fake_target, make_post, sync
):
    kept = one_landed_one_lost(fake_target, make_post, sync, "twin", "twin")
    # Record 1 is deleted, but every try is answered 503; the POST of `kept` never arrives, so
    # its lookup sees record 1 while the DELETE is under way.
    fake_target.fail(503, method="DELETE", times=5, after_processing=True, delay=0.2)
    fake_target.drop(method="POST", times=1)

    assert not sync(concurrency=2).ok  # the DELETE failed: its events stay pending
    assert sync(concurrency=2).ok

    assert target_state(fake_target) == expected_target(), "a record missing or left"
    assert state_of(kept).remote_id in fake_target.posts
    assert pending_count() == 0


# --- Lookups that fail ---------------------------------------------------------------------------


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
