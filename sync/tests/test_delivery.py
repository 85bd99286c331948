"""What a run sends: merge rules, deletes, changes that need no call, order, batches, remote
ids, and answers that settle a call at once.

Every test drives the real service against the fake target and asserts what reached the target
(its request log and state) and what the database remembers (pending events, sync state).
"""

import pytest
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext

from news.models import Comment, Post
from sync.models import EntitySyncState, SyncRun
from sync.planner import Kind
from sync.recording import recording_disabled
from sync.target import TABLES
from testing.sync import (
    calls_by_op,
    comment_record,
    expected_target,
    pending_count,
    post_record,
    remote_ids,
    state_of,
    target_state,
    writes,
)

pytestmark = [pytest.mark.django_db, pytest.mark.timeout(60)]


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


# --- Deletes: comments before their post, or one call where the target cascades ------------------


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


# --- No call for a change that changes nothing ---------------------------------------------------


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


# --- Order ---------------------------------------------------------------------------------------


def changes_in_three_waves(seed, make_post, make_comment) -> None:
    """Changes whose calls go in four waves: 13 independent ones; 5 comment writes to posts
    created in the same run; 5 comment deletes, after the comment creates; 2 post deletes, after
    everything but the post updates."""
    posts, comments = seed(6, comments_per_post=2)
    by_post = {post.pk: [c for c in comments if c.post_id == post.pk] for post in posts}
    new_posts = [make_post(title=f"new {n}") for n in range(4)]
    for new in new_posts:
        make_comment(new)
    make_comment(posts[0])
    for post in posts[:3]:
        post.title = "changed"
        post.save()
    for post in posts[:3]:
        for comment in by_post[post.pk]:
            comment.body = "changed"
            comment.save()
    moved = by_post[posts[2].pk][1]
    moved.post = new_posts[0]  # an update that needs its new post's create first
    moved.save()
    by_post[posts[3].pk][0].delete()
    by_post[posts[4].pk][1].delete()
    posts[5].delete()  # and its two comments
    posts[4].delete()  # and its remaining comment


def test_calls_go_in_waves_each_in_phase_order(fake_target, seed, make_post, make_comment, sync):
    changes_in_three_waves(seed, make_post, make_comment)

    report = sync(concurrency=1)

    sent = [(method, path.split("/")[1]) for method, path in writes(fake_target)]
    first_wave = (
        [("POST", "posts")] * 4
        + [("PUT", "posts")] * 3
        + [("POST", "comments")]
        + [("PUT", "comments")] * 5
    )
    second_wave = [("POST", "comments")] * 4 + [("PUT", "comments")]
    deletes = [("DELETE", "comments")] * 5 + [("DELETE", "posts")] * 2
    assert sent == first_wave + second_wave + deletes
    assert report.ok and report.calls_made == 25
    assert target_state(fake_target) == expected_target()


def test_a_call_waits_only_for_the_calls_it_needs_first(
    fake_target, seed, make_post, make_comment, sync
):
    """A comment written to a new post waits for that post's create; a post's delete for every
    comment update and delete; the rest does not wait for calls of other kinds."""
    changes_in_three_waves(seed, make_post, make_comment)
    fake_target.latency = 0.05

    report = sync(concurrency=4)

    assert report.ok and report.calls_made == 25
    assert target_state(fake_target) == expected_target()
    calls = [r for r in fake_target.calls() if r.is_write]
    created = {r.body["id"]: r for r in calls if (r.method, r.path) == ("POST", "/posts")}
    waited = [r for r in calls if r.method != "DELETE" and r.body.get("postId") in created]
    assert len(waited) == 5
    for r in waited:
        assert r.received_at >= created[r.body["postId"]].answered_at, f"{r.method} {r.path}"
    creates = [r for r in calls if r.method == "POST"]
    comment_deletes = [r for r in calls if r.method == "DELETE" and r.path.startswith("/comments")]
    for r in comment_deletes:
        assert all(r.received_at >= c.answered_at for c in creates if "/comments" in c.path)
    waited_for = [r for r in calls if not (r.method == "PUT" and r.path.startswith("/posts"))]
    post_deletes = [r for r in calls if r.method == "DELETE" and r.path.startswith("/posts")]
    assert len(post_deletes) == 2
    for r in post_deletes:
        assert all(r.received_at >= c.answered_at for c in waited_for if c not in post_deletes)
    # Not phase by phase: the first comment call goes out while post updates are under way.
    first_comment = min(r.received_at for r in calls if r.path.startswith("/comments"))
    post_updates = [r for r in calls if r.method == "PUT" and r.path.startswith("/posts")]
    assert first_comment < max(r.answered_at for r in post_updates)
    assert 1 < fake_target.max_in_flight <= 4


def test_a_create_never_takes_the_id_a_delete_of_the_same_run_frees(
    fake_target, make_post, make_comment, sync
):
    """A target that gives a new record the highest id plus one: were the create sent while the
    DELETE of the highest is under way, it would take the freed id (a record the run cannot
    tell from the one it deleted)."""
    fake_target.assign_ids = True
    post = make_post()
    comments = [make_comment(post, body=f"c{n}") for n in range(3)]
    assert sync().ok
    max(comments, key=lambda c: int(state_of(c).remote_id)).delete()
    make_comment(post, body="new one")
    fake_target.stall(0.1, method="POST", path="/comments", times=1)
    fake_target.stall(0.2, method="DELETE", path="/comments", times=1, after_processing=True)

    report = sync(concurrency=2)

    assert report.ok and report.calls_made == 2
    assert sync().calls_made == 0
    assert target_state(fake_target) == expected_target()
    assert len(fake_target.comments) == Comment.objects.count() == 3


@pytest.mark.parametrize("cascade", [False, True])
def test_a_found_copy_on_a_post_deleted_in_the_same_run_is_made_ours_before_the_delete(
    fake_target, seed, make_comment, sync, cascade
):
    """A comment's POST landed unanswered on post A; the comment then moved to post B and A was
    deleted. The lookup finds the copy on A: it is made ours (a PUT to B) before A goes, which
    on this target takes its comments with it."""
    (a, b), _ = seed(2)
    comment = make_comment(a, body="moving")
    fake_target.drop(method="POST", path="/comments", times=1, after_processing=True)
    fake_target.fail(503, method="GET")
    assert not sync().ok
    fake_target.clear_faults()
    assert state_of(comment).create_unconfirmed
    comment.post = b
    comment.save()
    deleted = a.pk
    a.delete()
    fake_target.reset_log()
    fake_target.stall(0.3, method="DELETE", path="/posts", times=1)

    report = sync(concurrency=4, cascade_deletes=cascade)

    assert report.ok and report.calls_made == 2
    assert writes(fake_target) == [
        ("PUT", f"/comments/{comment.pk}"),
        ("DELETE", f"/posts/{deleted}"),
    ]
    assert target_state(fake_target) == expected_target()


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


# --- Remote ids: kept as the target gave them, one record to one entity --------------------------


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


# --- Answers that settle a call without a retry --------------------------------------------------


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
