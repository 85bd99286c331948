"""sync_changes as a service: merge rules, order, batching, remote ids and failures, end to end.

Every test drives the real service against the fake target and asserts what reached the target
(its request log and state) and what the database remembers (pending events, sync state).
"""

import time
from collections.abc import Callable

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from news.models import Comment, Post
from sync.client import TargetApiClient
from sync.models import EntitySyncState, ModelEvent, SyncRun
from sync.planner import Call, EntityKey, Kind, Op, Phase
from sync.recording import recording_disabled
from sync.syncing.decisions import pick
from sync.syncing.deliveries import Action, Delivery, Outcome, Result
from sync.syncing.dispatch import CIRCUIT_BREAKER_THRESHOLD
from testing.ports import free_port
from testing.sync import (
    calls_by_op,
    comment_record,
    expected_target,
    pending_count,
    phases,
    post_record,
    remote_ids,
    state_of,
    target_state,
    writes,
)

pytestmark = [pytest.mark.django_db, pytest.mark.timeout(30)]


def delivered(obj) -> bool:
    """The sync state says the target holds `obj` under its own id, with no failure pending."""
    state = state_of(obj)
    return (
        state is not None
        and (state.remote_id, state.create_unconfirmed, state.last_error) == (obj.pk, False, "")
        and state.delivered_hash != ""
    )


# --- Merge rules ---------------------------------------------------------------------------------


def test_a_create_and_its_updates_become_one_post_with_the_latest_state(
    fake_target, make_post, sync
):
    post = make_post(user_id=4, title="draft", body="")
    post.title = "final"
    post.save()
    post.body = "done"
    post.save()

    report = sync()

    [request] = fake_target.calls()
    assert (request.method, request.path, request.status) == ("POST", "/posts", 201)
    assert request.body == {"id": post.pk, "userId": 4, "title": "final", "body": "done"}
    assert calls_by_op(report) == (1, 0, 0)
    assert (report.entities_synced, report.failed) == (1, [])
    assert pending_count() == 0


def test_a_new_comment_is_posted_with_the_target_field_names(
    fake_target, make_post, make_comment, sync
):
    post = make_post()
    comment = make_comment(post, name="Ann", email="ann@example.com", body="Nice")

    sync()

    [request] = fake_target.calls("POST", "/comments")
    assert request.body == {
        "id": comment.pk,
        "postId": post.pk,
        "name": "Ann",
        "email": "ann@example.com",
        "body": "Nice",
    }
    assert target_state(fake_target) == expected_target()


def test_updates_become_one_put_of_the_whole_record(fake_target, seed, sync):
    [post], [comment] = seed(1, comments_per_post=1)
    for title in ("one", "two", "three"):
        post.title = title
        post.save()
    Comment.objects.filter(pk=comment.pk).update(body="edited")
    Comment.objects.filter(pk=comment.pk).update(name="renamed")

    report = sync()

    assert writes(fake_target) == [("PUT", f"/posts/{post.pk}"), ("PUT", f"/comments/{comment.pk}")]
    put_post, put_comment = fake_target.calls("PUT")
    assert put_post.body == {**post_record(post), "title": "three"}
    comment.refresh_from_db()
    assert put_comment.body == comment_record(comment)
    assert put_comment.body["name"] == "renamed" and put_comment.body["body"] == "edited"
    assert calls_by_op(report) == (0, 2, 0)
    assert pending_count() == 0


def test_an_update_then_a_delete_becomes_one_delete(fake_target, seed, sync):
    [post, other], _ = seed(2)
    post.title = "changed"
    post.save()
    post_pk = post.pk
    post.delete()

    report = sync()

    assert writes(fake_target) == [("DELETE", f"/posts/{post_pk}")]
    assert calls_by_op(report) == (0, 0, 1)
    assert target_state(fake_target)["posts"] == [post_record(other)]
    assert pending_count() == 0


def test_a_create_then_a_delete_sends_nothing_and_settles_the_events(
    fake_target, make_post, make_comment, sync
):
    post = make_post()
    make_comment(post)
    post.title = "changed"
    post.save()
    post.delete()
    assert pending_count() == 5

    report = sync()

    assert fake_target.calls() == []
    assert report.calls_made == 0
    assert report.ok
    assert pending_count() == 0


def test_deleting_a_post_deletes_its_comments_first(fake_target, seed, sync):
    [post, kept], comments = seed(2, comments_per_post=3)
    post_pk = post.pk
    post.delete()

    report = sync()

    doomed = sorted(c.pk for c in comments if c.post_id == post_pk)
    assert writes(fake_target) == [("DELETE", f"/comments/{pk}") for pk in doomed] + [
        ("DELETE", f"/posts/{post_pk}")
    ]
    assert [r.status for r in fake_target.calls()] == [200] * 4
    assert calls_by_op(report) == (0, 0, 4)
    assert target_state(fake_target) == expected_target()
    assert len(target_state(fake_target)["comments"]) == 3


def test_a_second_run_sends_nothing(fake_target, seed, make_post, make_comment, sync):
    [post, doomed], _ = seed(2, comments_per_post=1)
    make_comment(make_post())
    post.title = "changed"
    post.save()
    doomed.delete()
    sync()
    fake_target.reset_log()

    report = sync()

    assert fake_target.calls() == []
    assert (report.calls_made, report.entities_synced, report.failed) == (0, 0, [])
    assert target_state(fake_target) == expected_target()


def test_every_run_is_recorded_with_its_counts(fake_target, seed, make_post, sync):
    [updated, deleted], _ = seed(2)
    make_post()
    updated.title = "changed"
    updated.save()
    deleted.delete()

    report = sync()

    run = SyncRun.objects.get(pk=report.run_id)
    assert (run.mode, run.status, run.finished_at is not None) == ("incremental", "succeeded", True)
    assert (run.events_pending, run.calls_created, run.calls_updated, run.calls_deleted) == (
        3,
        1,
        1,
        1,
    )
    assert (run.entities_synced, run.entities_failed, run.error_summary) == (3, 0, "")


# --- Order ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("concurrency", [1, 4])
def test_calls_go_out_phase_by_phase(fake_target, seed, make_post, make_comment, sync, concurrency):
    """Post creates, post updates, comment creates and updates, comment deletes, post deletes."""
    posts, comments = seed(6, comments_per_post=2)
    by_post = {post.pk: [c for c in comments if c.post_id == post.pk] for post in posts}
    new_posts = [make_post(title=f"new {n}") for n in range(4)]
    for new in new_posts:
        make_comment(new)
    make_comment(posts[0])
    for post in posts[:4]:
        post.title = "changed"
        post.save()
    for post in posts[:3]:
        for comment in by_post[post.pk]:
            comment.body = "changed"
            comment.save()
    by_post[posts[3].pk][0].delete()
    by_post[posts[4].pk][1].delete()
    posts[5].delete()  # and its two comments
    posts[4].delete()  # and its remaining comment
    fake_target.latency = 0.01

    report = sync(concurrency=concurrency)

    order = phases(fake_target)
    assert order == sorted(order)
    assert [order.count(phase) for phase in Phase] == [4, 4, 5, 6, 5, 2]
    assert report.ok and report.calls_made == 26
    assert target_state(fake_target) == expected_target()
    if concurrency > 1:
        assert 1 < fake_target.max_in_flight <= concurrency


# --- Batches -------------------------------------------------------------------------------------


def make_posts_with_comments(count: int) -> None:
    posts = Post.objects.bulk_create(Post(user_id=1, title=f"p{n}") for n in range(count))
    Comment.objects.bulk_create(
        Comment(post=post, name="n", email="n@example.com") for post in posts
    )


def test_payloads_are_loaded_with_a_few_queries_per_batch_not_one_per_object(
    fake_target, sync, django_assert_max_num_queries
):
    make_posts_with_comments(50)  # 100 calls: batches of 16, 32 and 2 posts, the same of comments
    with CaptureQueriesContext(connection) as small:
        sync(concurrency=4, batch_size=100)
    make_posts_with_comments(300)  # 600 calls: 16, 32, 64, 100 and 88 of each

    # A handful of queries per batch (load, flag, record), nowhere near one per object.
    with django_assert_max_num_queries(110) as large:
        report = sync(concurrency=4, batch_size=100)

    assert report.calls_made == 600 and report.ok
    # Six times the calls, four more batches.
    assert len(large.captured_queries) - len(small.captured_queries) <= 4 * 12
    assert target_state(fake_target) == expected_target()


def test_one_slow_answer_holds_up_no_later_batch_of_its_phase(fake_target, make_post, sync):
    posts = [make_post(title=f"post {n}") for n in range(40)]
    fake_target.stall(1.5, method="POST", times=1)  # the first create sent

    report = sync(concurrency=2, batch_size=10)  # batches of 8, 10, 10, 10 and 2

    assert report.ok and report.calls_made == 40
    [stalled] = [r for r in fake_target.calls("POST") if r.answered_at - r.received_at >= 1.5]
    others = [r for r in fake_target.calls("POST") if r is not stalled]
    # Every other create, those of the last batch included, went out while it was under way.
    assert max(r.received_at for r in others) < stalled.answered_at
    assert sorted(r.body["id"] for r in fake_target.calls("POST")) == [p.pk for p in posts]
    assert target_state(fake_target) == expected_target()


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


# --- Remote ids ----------------------------------------------------------------------------------

PLACEHOLDER_POST = {"id": 1_000_000, "userId": 1, "title": "theirs", "body": ""}
PLACEHOLDER_COMMENT = {"id": 2_000_000, "postId": 1_000_000, "name": "x", "email": "x", "body": ""}


@pytest.fixture
def id_assigning_target(fake_target):
    """A target that ignores the ids it is sent: new posts get 1000001..., comments 2000001..."""
    fake_target.assign_ids = True
    fake_target.load(posts=[PLACEHOLDER_POST], comments=[PLACEHOLDER_COMMENT])
    return fake_target


def ours(target) -> dict:
    """The target's records without the placeholders it started with."""
    state = target_state(target)
    return {
        "posts": [r for r in state["posts"] if r != PLACEHOLDER_POST],
        "comments": [r for r in state["comments"] if r != PLACEHOLDER_COMMENT],
    }


def test_ids_given_by_the_target_are_kept_and_used_for_later_calls(
    id_assigning_target, make_post, make_comment, sync
):
    target = id_assigning_target
    post = make_post()
    comment = make_comment(post)

    assert sync().ok
    assert remote_ids(Kind.POST) == {post.pk: 1_000_001}
    assert remote_ids(Kind.COMMENT) == {comment.pk: 2_000_001}
    [post_create, comment_create] = target.calls()
    assert post_create.body["id"] == post.pk
    assert comment_create.body["postId"] == 1_000_001
    assert ours(target) == expected_target()

    target.reset_log()
    post.title = "changed"
    post.save()
    comment.body = "changed"
    comment.save()
    second = make_comment(post)
    assert sync().ok
    assert writes(target) == [
        ("PUT", "/posts/1000001"),
        ("POST", "/comments"),
        ("PUT", "/comments/2000001"),
    ]
    assert target.calls("PUT", "/posts")[0].body["id"] == 1_000_001
    assert target.calls("POST")[0].body["postId"] == 1_000_001
    assert remote_ids(Kind.COMMENT) == {comment.pk: 2_000_001, second.pk: 2_000_002}
    assert ours(target) == expected_target()

    target.reset_log()
    post.delete()
    assert sync().ok
    assert writes(target) == [
        ("DELETE", "/comments/2000001"),
        ("DELETE", "/comments/2000002"),
        ("DELETE", "/posts/1000001"),
    ]
    assert remote_ids(Kind.POST) == remote_ids(Kind.COMMENT) == {}
    assert ours(target) == {"posts": [], "comments": []}


def test_a_full_sync_compares_records_under_their_remote_ids(
    id_assigning_target, make_post, make_comment, sync
):
    target = id_assigning_target
    make_comment(make_post())
    sync()
    target.reset_log()

    report = sync(full=True)

    assert writes(target) == [("DELETE", "/comments/2000000"), ("DELETE", "/posts/1000000")]
    assert report.ok
    assert target_state(target) == expected_target()


# --- Answers that need no retry ------------------------------------------------------------------


def test_a_delete_answered_404_counts_as_done(fake_target, seed, sync):
    [post, _], _ = seed(2)
    fake_target.posts.pop(post.pk)
    post_pk = post.pk
    post.delete()

    report = sync()

    assert [(r.method, r.path, r.status) for r in fake_target.calls()] == [
        ("DELETE", f"/posts/{post_pk}", 404)
    ]
    assert report.ok and calls_by_op(report) == (0, 0, 1)
    assert pending_count() == 0


def test_an_update_answered_404_creates_the_record_again(fake_target, seed, sync):
    [post], _ = seed(1)
    fake_target.load(posts=[], comments=[])
    post.title = "changed"
    post.save()

    report = sync()

    assert [(r.method, r.status) for r in fake_target.calls()] == [("PUT", 404), ("POST", 201)]
    assert fake_target.calls("POST")[0].body == post_record(post)
    assert report.ok
    assert target_state(fake_target) == expected_target()
    assert pending_count() == 0


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


# --- Failures ------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_a_500_is_retried_within_the_run(fake_target, seed, make_post, sync, method):
    [updated, deleted], _ = seed(2)
    make_post()
    updated.title = "changed"
    updated.save()
    deleted.delete()
    fake_target.fail(500, method=method, times=1)

    report = sync()

    assert report.ok and report.calls_made == 3
    assert [r.status for r in fake_target.calls(method)][0] == 500
    assert target_state(fake_target) == expected_target()
    assert pending_count() == 0


def test_503s_up_to_the_retries_are_delivered_in_the_same_run(fake_target, seed, sync):
    [post], _ = seed(1)
    post.title = "changed"
    post.save()
    fake_target.fail(503, method="PUT", times=2)  # the target_client retries twice

    report = sync()

    assert report.ok
    assert [r.status for r in fake_target.calls()] == [503, 503, 200]
    assert pending_count() == 0


def test_503s_beyond_the_retries_leave_the_change_for_the_next_run(fake_target, seed, sync):
    [post, other], _ = seed(2)
    post.title = "changed"
    post.save()
    other.title = "changed too"
    other.save()
    fake_target.fail(503, method="PUT", path=f"/posts/{post.pk}", times=3)

    report = sync()

    assert [str(failed) for failed in report.failed] == [
        f"PUT post {post.pk}: PUT {fake_target.url}/posts/{post.pk}: "
        'HTTP 503 Service Unavailable (application/json): {"error":"Service Unavailable"}'
    ]
    assert not report.failed[0].permanent
    assert report.entities_synced == 1
    assert pending_count() == 1
    state = state_of(post)
    # The target answered the other call, so the 5xx counts towards parking this entity.
    assert "HTTP 503" in state.last_error and state.attempts == 1
    assert SyncRun.objects.get(pk=report.run_id).status == "partial"

    fake_target.reset_log()
    report = sync()

    assert report.ok
    assert writes(fake_target) == [("PUT", f"/posts/{post.pk}")]
    assert pending_count() == 0
    assert delivered(post) and state_of(post).attempts == 0
    assert target_state(fake_target) == expected_target()


def test_retry_after_of_a_429_is_honoured(fake_target, seed, sync):
    [post], _ = seed(1)
    post.title = "changed"
    post.save()
    fake_target.fail(429, retry_after=1, times=1)

    started = time.monotonic()
    report = sync()

    assert time.monotonic() - started >= 1.0
    assert report.ok
    assert [r.status for r in fake_target.calls()] == [429, 200]


def test_a_closed_connection_on_a_put_is_retried(fake_target, seed, sync):
    [post], _ = seed(1)
    post.title = "changed"
    post.save()
    fake_target.drop(method="PUT", times=1)

    assert sync().ok
    assert [r.status for r in fake_target.calls()] == [None, 200]
    assert target_state(fake_target) == expected_target()


def test_a_closed_connection_on_a_post_is_checked_and_sent_again(fake_target, make_post, sync):
    post = make_post()
    fake_target.drop(method="POST", times=1)

    assert sync().ok
    assert [(r.method, r.path, r.status) for r in fake_target.calls()] == [
        ("POST", "/posts", None),
        ("GET", "/posts", 200),  # looked for by its content: not there
        ("POST", "/posts", 201),
    ]
    assert fake_target.calls("GET")[0].query == {
        "userId": [str(post.user_id)],
        "title": [post.title],
        "body": [post.body],
    }
    assert target_state(fake_target) == expected_target()
    assert delivered(post)


def test_a_post_applied_but_unanswered_is_found_and_not_duplicated(fake_target, make_post, sync):
    post = make_post()
    fake_target.drop(method="POST", times=1, after_processing=True)

    assert sync().ok
    assert [(r.method, r.status) for r in fake_target.calls()] == [("POST", None), ("GET", 200)]
    assert target_state(fake_target) == expected_target()
    assert pending_count() == 0
    assert delivered(post)


def test_a_stalled_call_is_retried_after_the_timeout(fake_target, seed, sync):
    [post], _ = seed(1)
    post.title = "changed"
    post.save()
    fake_target.stall(0.6, method="PUT", times=1)

    with TargetApiClient(
        base_url=fake_target.url, timeout=0.2, retries=2, backoff_factor=0.01, backoff_max=0.02
    ) as client:
        report = sync(client=client)

    assert report.ok
    assert len(fake_target.calls("PUT")) == 2
    assert pending_count() == 0


def test_a_target_that_never_answers_in_time_leaves_the_change_pending(fake_target, seed, sync):
    [post], _ = seed(1)
    post.title = "changed"
    post.save()
    fake_target.stall(0.5, method="PUT")

    with TargetApiClient(
        base_url=fake_target.url, timeout=0.2, retries=1, backoff_factor=0.01, backoff_max=0.02
    ) as client:
        report = sync(client=client)

    assert [f.error for f in report.failed] == [
        f"PUT {fake_target.url}/posts/{post.pk}: no answer within 0.2 s"
    ]
    assert pending_count() == 1
    assert "no answer within 0.2 s" in state_of(post).last_error


def test_a_permanent_error_is_recorded_not_retried_and_blocks_no_one(
    fake_target, make_post, make_comment, sync
):
    refused, accepted = make_post(title="refused"), make_post(title="accepted")
    held, accepted_comment = make_comment(refused), make_comment(accepted)
    fake_target.fail(400, method="POST", path="/posts", times=1, body={"error": "bad title"})

    report = sync()

    assert writes(fake_target) == [("POST", "/posts"), ("POST", "/posts"), ("POST", "/comments")]
    assert fake_target.calls("POST", "/posts")[0].body["id"] == refused.pk
    assert fake_target.calls("POST", "/comments")[0].body["id"] == accepted_comment.pk
    assert {(f.entity.kind, f.entity.pk, f.permanent) for f in report.failed} == {
        (Kind.POST, refused.pk, True),
        (Kind.COMMENT, held.pk, False),
    }
    [held_back] = [f for f in report.failed if f.entity.kind is Kind.COMMENT]
    assert held_back.error == f"held back: post {refused.pk} is not on the target"
    state = state_of(refused)
    assert (state.attempts, state.create_unconfirmed, state.parked_at) == (1, False, None)
    assert 'HTTP 400 Bad Request (application/json): {"error":"bad title"}' in state.last_error
    assert pending_count() == 2  # the refused post's and the held comment's

    fake_target.reset_log()
    report = sync()

    assert report.ok
    assert writes(fake_target) == [("POST", "/posts"), ("POST", "/comments")]
    assert target_state(fake_target) == expected_target()
    assert pending_count() == 0
    assert delivered(refused) and delivered(held)


def test_an_entity_refused_run_after_run_is_parked_until_it_changes_again(fake_target, seed, sync):
    [stuck, fine], _ = seed(2)
    stuck.title = "rejected"
    stuck.save()
    refuse = fake_target.fail(400, method="PUT", path=f"/posts/{stuck.pk}")

    for attempt in (1, 2):
        fine.title = f"fine {attempt}"
        fine.save()
        report = sync(max_attempts=2)
        assert [f.entity.pk for f in report.failed] == [stuck.pk]
        assert state_of(stuck).attempts == attempt
        assert target_state(fake_target)["posts"][1] == post_record(fine)
    assert state_of(stuck).parked_at is not None

    fake_target.reset_log()
    report = sync(max_attempts=2)

    assert fake_target.calls() == []  # parked: not sent again
    assert [(f.entity.pk, f.error) for f in report.failed] == [
        (stuck.pk, "parked after repeated failures")
    ]
    assert pending_count() == 1

    fake_target.faults.remove(refuse)
    stuck.title = "fixed"
    stuck.save()
    report = sync(max_attempts=2)

    assert report.ok
    assert writes(fake_target) == [("PUT", f"/posts/{stuck.pk}")]
    assert fake_target.calls()[0].body["title"] == "fixed"
    assert delivered(stuck) and state_of(stuck).attempts == 0
    assert pending_count() == 0


def test_a_refused_create_that_is_deleted_again_is_forgotten(fake_target, make_post, sync):
    post = make_post()
    fake_target.fail(400, method="POST", times=1)
    assert not sync().ok
    assert state_of(post).attempts == 1
    post_pk = post.pk
    post.delete()
    fake_target.reset_log()

    report = sync()

    assert report.ok and fake_target.calls() == []
    assert pending_count() == 0
    assert not EntitySyncState.objects.filter(entity_pk=post_pk).exists()


def test_new_comments_of_a_parked_new_post_are_held_back(
    fake_target, make_post, make_comment, sync
):
    post = make_post()
    comment = make_comment(post)
    fake_target.fail(400, method="POST", path="/posts")
    sync(max_attempts=1)
    assert state_of(post).parked_at is not None
    fake_target.reset_log()

    report = sync(max_attempts=1)

    assert fake_target.calls() == []
    assert {(f.entity.kind, f.entity.pk) for f in report.failed} == {
        (Kind.POST, post.pk),
        (Kind.COMMENT, comment.pk),
    }
    assert pending_count() == 2


def test_comments_of_a_post_whose_create_failed_wait_for_it(
    fake_target, make_post, make_comment, sync
):
    post = make_post()
    comments = [make_comment(post) for _ in range(3)]
    fake_target.fail(503, method="POST", path="/posts", times=3)

    report = sync()

    assert [(r.method, r.path) for r in fake_target.calls() if r.method != "GET"] == [
        ("POST", "/posts")
    ] * 3
    assert len(report.failed) == 4
    assert pending_count() == 4

    fake_target.reset_log()
    assert sync().ok
    assert writes(fake_target) == [("POST", "/posts")] + [("POST", "/comments")] * 3
    assert [r.body["id"] for r in fake_target.calls("POST", "/comments")] == [
        c.pk for c in comments
    ]
    assert target_state(fake_target) == expected_target()


def test_an_unreachable_target_stops_the_run_early_and_marks_nothing(make_post, sync):
    posts = [make_post() for _ in range(CIRCUIT_BREAKER_THRESHOLD + 15)]
    url = f"http://127.0.0.1:{free_port()}"

    with TargetApiClient(base_url=url, retries=1, backoff_factor=0.01, backoff_max=0.01) as client:
        started = time.monotonic()
        report = sync(client=client)

    assert time.monotonic() - started < 5
    assert report.stopped_early == (
        f"stopped after {CIRCUIT_BREAKER_THRESHOLD} calls in a row found the target unreachable"
    )
    assert not report.ok and report.calls_made == 0
    assert len(report.failed) == len(posts)
    assert sum("not sent: stopped after 10 calls" in f.error for f in report.failed) == 15
    assert pending_count() == len(posts)
    assert not EntitySyncState.objects.filter(attempts__gt=0).exists()
    run = SyncRun.objects.get(pk=report.run_id)
    assert run.status == "partial"
    assert run.error_summary.startswith("stopped after 10 calls in a row")
    assert report.summary().endswith(
        "; stopped after 10 calls in a row found the target unreachable"
    )


def test_the_next_run_after_an_unreachable_one_delivers_everything_once(
    fake_target, make_post, make_comment, sync
):
    for _ in range(12):
        make_comment(make_post())
    url = f"http://127.0.0.1:{free_port()}"
    with TargetApiClient(base_url=url, retries=0, backoff_factor=0.01) as client:
        sync(client=client)

    report = sync()

    assert report.ok
    assert target_state(fake_target) == expected_target()
    assert len(fake_target.calls("POST")) == 24
    assert pending_count() == 0
    assert not EntitySyncState.objects.filter(create_unconfirmed=True).exists()
    assert remote_ids(Kind.POST) == {pk: pk for pk in Post.objects.values_list("pk", flat=True)}
