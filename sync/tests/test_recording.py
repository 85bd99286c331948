"""Every change to a Post or Comment leaves exactly one ModelEvent, in the same transaction."""

import asyncio
import threading

import pytest
from django.db import connection, transaction
from django.db.models import F
from django.db.models.signals import post_delete, post_save
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from news.models import Comment, Post
from sync.models import ModelEvent
from sync.recording import is_recording, recording_disabled
from testing import rows

pytestmark = pytest.mark.django_db

POST = "news_post"
COMMENT = "news_comment"


def events() -> list[tuple[str, int, str]]:
    return list(ModelEvent.objects.order_by("id").values_list("entity_table", "entity_pk", "type"))


def make_post(**fields) -> Post:
    """A post that exists already: made without a change event of its own."""
    with recording_disabled():
        return rows.make_post(**fields)


def make_comment(post: Post, **fields) -> Comment:
    """A comment that exists already: made without a change event of its own."""
    with recording_disabled():
        return rows.make_comment(post, **fields)


# --- Through the API ---------------------------------------------------------------------------


def test_creating_a_post_through_the_api_logs_one_created_event(api_client):
    with CaptureQueriesContext(connection) as queries:
        response = api_client.post("/news/posts/", {"title": "Hello", "body": "World"})

    assert response.status_code == 201
    assert events() == [(POST, response.data["id"], "CREATED")]
    event_inserts = [q for q in queries if q["sql"].startswith('INSERT INTO "sync_modelevent"')]
    assert len(event_inserts) == 1


@pytest.mark.parametrize("method", ["put", "patch"])
def test_updating_a_post_through_the_api_logs_one_updated_event(api_client, user, method):
    post = make_post(created_by=user)

    response = getattr(api_client, method)(f"/news/posts/{post.pk}/", {"title": "Changed"})

    assert response.status_code == 200
    assert events() == [(POST, post.pk, "UPDATED")]


def test_deleting_a_post_through_the_api_logs_its_comments_by_id_then_the_post(api_client, user):
    post = make_post(created_by=user)
    second, first = make_comment(post), make_comment(post)
    other_post_comment = make_comment(make_post())

    response = api_client.delete(f"/news/posts/{post.pk}/")

    assert response.status_code == 204
    assert events() == [
        (COMMENT, second.pk, "DELETED"),
        (COMMENT, first.pk, "DELETED"),
        (POST, post.pk, "DELETED"),
    ]
    assert Comment.objects.filter(pk=other_post_comment.pk).exists()


def test_comment_create_update_delete_through_the_api_log_one_event_each(api_client):
    post = make_post()

    created = api_client.post(
        "/news/comments/", {"post_id": post.pk, "name": "Ann", "email": "ann@example.com"}
    )
    nested = api_client.post(
        f"/news/posts/{post.pk}/comments/", {"name": "Bob", "email": "bob@example.com"}
    )
    patched = api_client.patch(f"/news/comments/{created.data['id']}/", {"body": "Edited"})
    put = api_client.put(
        f"/news/comments/{nested.data['id']}/",
        {"name": "Bob", "email": "bob@example.com", "body": "Replaced"},
    )
    deleted = api_client.delete(f"/news/comments/{created.data['id']}/")

    assert [r.status_code for r in (created, nested, patched, put, deleted)] == [
        201,
        201,
        200,
        200,
        204,
    ]
    assert events() == [
        (COMMENT, created.data["id"], "CREATED"),
        (COMMENT, nested.data["id"], "CREATED"),
        (COMMENT, created.data["id"], "UPDATED"),
        (COMMENT, nested.data["id"], "UPDATED"),
        (COMMENT, created.data["id"], "DELETED"),
    ]


def test_rejected_api_writes_log_nothing(api_client, other_client, user):
    post = make_post(created_by=user)

    invalid = api_client.post("/news/posts/", {"body": "no title"})
    forbidden = other_client.patch(f"/news/posts/{post.pk}/", {"title": "Not mine"})
    forbidden_delete = other_client.delete(f"/news/posts/{post.pk}/")

    assert (invalid.status_code, forbidden.status_code, forbidden_delete.status_code) == (
        400,
        403,
        403,
    )
    assert events() == []


@pytest.mark.django_db(transaction=True)
def test_failure_after_the_save_in_a_request_commits_neither_row_nor_event(user):
    def fail_after_save(sender, instance, **kwargs):
        raise RuntimeError("boom after the save")

    client = APIClient(raise_request_exception=False)
    client.force_authenticate(user)
    post_save.connect(fail_after_save, sender=Post, dispatch_uid="test.fail_after_save")
    try:
        response = client.post("/news/posts/", {"title": "Never committed"})
    finally:
        post_save.disconnect(sender=Post, dispatch_uid="test.fail_after_save")

    assert response.status_code == 500
    assert not Post.objects.exists()
    assert events() == []
    # The same request succeeds, and logs, once the failure is gone.
    assert client.post("/news/posts/", {"title": "Committed"}).status_code == 201
    assert [event[2] for event in events()] == ["CREATED"]


@pytest.mark.django_db(transaction=True)
def test_failure_after_a_delete_in_a_request_keeps_the_rows_and_logs_nothing(user):
    def fail_after_delete(sender, instance, **kwargs):
        raise RuntimeError("boom after the delete")

    post = make_post(created_by=user)
    comment = make_comment(post)
    client = APIClient(raise_request_exception=False)
    client.force_authenticate(user)
    post_delete.connect(fail_after_delete, sender=Post, dispatch_uid="test.fail_after_delete")
    try:
        response = client.delete(f"/news/posts/{post.pk}/")
    finally:
        post_delete.disconnect(sender=Post, dispatch_uid="test.fail_after_delete")

    assert response.status_code == 500
    assert Post.objects.filter(pk=post.pk).exists()
    assert Comment.objects.filter(pk=comment.pk).exists()
    assert events() == []


@pytest.mark.django_db(transaction=True)
def test_failure_after_a_bulk_write_rolls_back_rows_and_events():
    post = make_post()

    with pytest.raises(RuntimeError), transaction.atomic():
        Post.objects.update(title="Changed")
        Comment.objects.bulk_create([Comment(post=post, name="Ann", email="a@example.com")])
        raise RuntimeError("boom")

    assert Post.objects.get().title == "A title"
    assert not Comment.objects.exists()
    assert events() == []


# --- Through the ORM ---------------------------------------------------------------------------


def test_an_event_names_the_table_and_row_and_is_pending():
    before = timezone.now()
    post = Post.objects.create(user_id=1, title="Hello")

    event = ModelEvent.objects.get()

    assert (event.entity_table, event.entity_pk, event.type) == (POST, post.pk, "CREATED")
    assert before <= event.logged_at <= timezone.now()
    assert event.synced_at is None


def test_orm_save_and_delete_log_one_event_each():
    post = Post.objects.create(user_id=1, title="Hello")
    comment = Comment.objects.create(post=post, name="Ann", email="ann@example.com")
    post.title = "Changed"
    post.save()
    comment.body = "Edited"
    comment.save(update_fields=["body"])
    post_pk, comment_pk = post.pk, comment.pk
    comment.delete()
    post.delete()

    assert events() == [
        (POST, post_pk, "CREATED"),
        (COMMENT, comment_pk, "CREATED"),
        (POST, post_pk, "UPDATED"),
        (COMMENT, comment_pk, "UPDATED"),
        (COMMENT, comment_pk, "DELETED"),
        (POST, post_pk, "DELETED"),
    ]


def test_saving_with_no_fields_to_update_logs_nothing():
    post = make_post()

    post.save(update_fields=[])

    assert events() == []


def test_deleting_a_post_logs_its_comments_by_id_then_the_post():
    post = make_post()
    comments = [make_comment(post, name=name) for name in ("c", "a", "b")]

    post.delete()

    assert events() == [(COMMENT, c.pk, "DELETED") for c in comments] + [
        (POST, comments[0].post_id, "DELETED")
    ]


def test_queryset_delete_logs_every_comment_then_every_post():
    first, second, kept = make_post(), make_post(), make_post(title="kept")
    comments = [make_comment(second), make_comment(first), make_comment(second)]
    make_comment(kept)

    deleted, _ = Post.objects.exclude(title="kept").delete()

    assert deleted == 5
    assert events() == [(COMMENT, c.pk, "DELETED") for c in comments] + [
        (POST, first.pk, "DELETED"),
        (POST, second.pk, "DELETED"),
    ]


def test_comment_queryset_delete_logs_one_event_per_row():
    post = make_post()
    comments = [make_comment(post) for _ in range(3)]

    Comment.objects.filter(pk__in=[comments[0].pk, comments[2].pk]).delete()

    assert events() == [(COMMENT, comments[0].pk, "DELETED"), (COMMENT, comments[2].pk, "DELETED")]


# --- Bulk paths --------------------------------------------------------------------------------


def test_queryset_update_logs_one_event_per_affected_row():
    posts = [make_post(title=f"post {i}") for i in range(4)]

    count = Post.objects.filter(pk__in=[posts[3].pk, posts[1].pk]).update(body="bulk")

    assert count == 2
    assert events() == [(POST, posts[1].pk, "UPDATED"), (POST, posts[3].pk, "UPDATED")]
    assert set(Post.objects.filter(body="bulk").values_list("pk", flat=True)) == {
        posts[1].pk,
        posts[3].pk,
    }


def test_queryset_update_matching_nothing_logs_nothing():
    make_post()

    assert Post.objects.filter(title="no such title").update(body="x") == 0
    assert Comment.objects.update(body="x") == 0
    assert events() == []


def test_queryset_update_across_a_join_logs_each_row_once():
    post, other, lonely = make_post(), make_post(), make_post()
    make_comment(post, name="Ann")
    make_comment(post, name="Ann")
    make_comment(other, name="Bob")

    count = Post.objects.filter(comments__name="Ann").update(title=F("title"))
    without_comments = Post.objects.filter(comments__isnull=True).update(body="none")

    assert (count, without_comments) == (1, 1)
    assert events() == [(POST, post.pk, "UPDATED"), (POST, lonely.pk, "UPDATED")]


def test_queryset_update_keeps_djangos_own_refusals():
    make_post()

    with pytest.raises(TypeError, match="slice"):
        Post.objects.all()[:1].update(title="x")
    assert events() == []


def test_bulk_create_logs_one_created_event_per_row_with_its_pk():
    post = make_post()

    posts = Post.objects.bulk_create([Post(user_id=1, title=f"p{i}") for i in range(3)])
    comments = Comment.objects.bulk_create(
        [Comment(post=post, name=f"c{i}", email="c@example.com") for i in range(2)]
    )

    assert all(p.pk for p in posts + comments)
    assert events() == [(POST, p.pk, "CREATED") for p in posts] + [
        (COMMENT, c.pk, "CREATED") for c in comments
    ]


@pytest.mark.parametrize(
    "options",
    [
        {"ignore_conflicts": True},
        {"update_conflicts": True, "update_fields": ["title"], "unique_fields": ["id"]},
    ],
)
def test_bulk_create_that_may_skip_rows_is_refused_with_a_clear_error(options):
    with pytest.raises(TypeError, match="cannot be change-logged"):
        Post.objects.bulk_create([Post(user_id=1, title="p")], **options)

    assert not Post.objects.exists()
    assert events() == []


def test_bulk_create_that_may_skip_rows_is_allowed_with_recording_off():
    with recording_disabled():
        Post.objects.bulk_create([Post(user_id=1, title="p")], ignore_conflicts=True)

    assert Post.objects.count() == 1
    assert events() == []


def test_bulk_update_logs_one_updated_event_per_row():
    post = make_post()
    comments = [make_comment(post) for _ in range(3)]
    for comment in comments:
        comment.body = f"edited {comment.pk}"

    count = Comment.objects.bulk_update(comments, ["body"], batch_size=2)

    assert count == 3
    assert events() == [(COMMENT, c.pk, "UPDATED") for c in comments]
    assert Comment.objects.filter(body__startswith="edited").count() == 3


def test_bulk_update_logs_only_rows_that_still_exist():
    posts = [make_post() for _ in range(3)]
    with recording_disabled():
        Post.objects.filter(pk=posts[1].pk).delete()
    for post in posts:
        post.title = "renamed"

    count = Post.objects.bulk_update(posts + [posts[0]], ["title"])

    assert count == 2
    assert events() == [(POST, posts[0].pk, "UPDATED"), (POST, posts[2].pk, "UPDATED")]


def test_every_write_method_of_both_models_logs_exactly_its_changes():
    log: list[tuple[str, int, str]] = []

    def expect(*entries: tuple[str, int, str]) -> None:
        log.extend(entries)
        assert events() == log

    post = Post.objects.create(user_id=1, title="create")
    expect((POST, post.pk, "CREATED"))
    post.title = "save"
    post.save()
    expect((POST, post.pk, "UPDATED"))
    got, created = Post.objects.get_or_create(title="create-2", defaults={"user_id": 1})
    expect((POST, got.pk, "CREATED"))
    Post.objects.get_or_create(title="create-2", defaults={"user_id": 1})
    expect()
    updated, created = Post.objects.update_or_create(pk=got.pk, defaults={"body": "u"})
    expect((POST, got.pk, "UPDATED"))
    fresh, created = Post.objects.update_or_create(title="fresh", defaults={"user_id": 2})
    expect((POST, fresh.pk, "CREATED"))
    Post.objects.filter(pk__in=[post.pk, fresh.pk]).update(body="update")
    expect((POST, post.pk, "UPDATED"), (POST, fresh.pk, "UPDATED"))
    bulk = Post.objects.bulk_create([Post(user_id=1, title="b1"), Post(user_id=1, title="b2")])
    expect(*[(POST, p.pk, "CREATED") for p in bulk])
    for p in bulk:
        p.body = "bulk_update"
    Post.objects.bulk_update(bulk, ["body"])
    expect(*[(POST, p.pk, "UPDATED") for p in bulk])

    comment = Comment.objects.create(post=post, name="create", email="a@example.com")
    expect((COMMENT, comment.pk, "CREATED"))
    comment.name = "save"
    comment.save()
    expect((COMMENT, comment.pk, "UPDATED"))
    related = post.comments.create(name="related", email="a@example.com")
    expect((COMMENT, related.pk, "CREATED"))
    got_comment, _ = post.comments.get_or_create(name="goc", defaults={"email": "a@example.com"})
    expect((COMMENT, got_comment.pk, "CREATED"))
    post.comments.update_or_create(pk=got_comment.pk, defaults={"body": "uoc"})
    expect((COMMENT, got_comment.pk, "UPDATED"))
    Comment.objects.get_or_create(post=post, name="goc-2", defaults={"email": "a@example.com"})
    goc2 = Comment.objects.get(name="goc-2")
    expect((COMMENT, goc2.pk, "CREATED"))
    Comment.objects.update_or_create(pk=goc2.pk, defaults={"body": "uoc-2"})
    expect((COMMENT, goc2.pk, "UPDATED"))
    on_post = sorted(post.comments.values_list("pk", flat=True))
    post.comments.update(body="related update")
    expect(*[(COMMENT, pk, "UPDATED") for pk in on_post])
    Comment.objects.filter(pk=comment.pk).update(body="update")
    expect((COMMENT, comment.pk, "UPDATED"))
    bulk_comments = Comment.objects.bulk_create(
        [Comment(post=fresh, name=f"b{i}", email="b@example.com") for i in range(2)]
    )
    expect(*[(COMMENT, c.pk, "CREATED") for c in bulk_comments])
    for c in bulk_comments:
        c.body = "bulk_update"
    Comment.objects.bulk_update(bulk_comments, ["body"])
    expect(*[(COMMENT, c.pk, "UPDATED") for c in bulk_comments])

    comment_pk = comment.pk
    comment.delete()
    expect((COMMENT, comment_pk, "DELETED"))
    remaining_on_post = sorted(post.comments.values_list("pk", flat=True))
    post.comments.all().delete()
    expect(*[(COMMENT, pk, "DELETED") for pk in remaining_on_post])
    Comment.objects.filter(pk=bulk_comments[0].pk).delete()
    expect((COMMENT, bulk_comments[0].pk, "DELETED"))
    fresh_pk, remaining = fresh.pk, bulk_comments[1].pk
    fresh.delete()
    expect((COMMENT, remaining, "DELETED"), (POST, fresh_pk, "DELETED"))
    left = sorted(Post.objects.values_list("pk", flat=True))
    Post.objects.all().delete()
    expect(*[(POST, pk, "DELETED") for pk in left])


def test_moving_a_comment_with_related_manager_add_logs_an_update():
    post, other = make_post(), make_post()
    comment = make_comment(post)

    other.comments.add(comment)

    assert events() == [(COMMENT, comment.pk, "UPDATED")]


def test_deleting_a_user_keeps_their_rows_and_logs_nothing(user):
    post = make_post(created_by=user)
    comment = make_comment(post, created_by=user)
    ModelEvent.objects.all().delete()

    user.delete()

    post.refresh_from_db()
    comment.refresh_from_db()
    assert (post.created_by_id, comment.created_by_id) == (None, None)
    assert events() == []


def test_an_update_of_local_fields_only_logs_nothing_but_any_other_field_does(user):
    post = make_post()
    ModelEvent.objects.all().delete()

    Post.objects.filter(pk=post.pk).update(created_by=user)
    Post.objects.filter(pk=post.pk).update(created_by=None, title="Renamed")

    assert events() == [(POST, post.pk, "UPDATED")]


# --- Switching recording off -------------------------------------------------------------------


def test_recording_disabled_logs_no_write_at_all():
    with recording_disabled():
        post = Post.objects.create(user_id=1, title="import")
        comment = Comment.objects.create(post=post, name="Ann", email="a@example.com")
        post.save()
        Post.objects.update(body="x")
        Comment.objects.bulk_create([Comment(post=post, name="b", email="b@example.com")])
        Comment.objects.bulk_update([comment], ["body"])
        post.delete()

    assert not Post.objects.exists()
    assert events() == []


def test_recording_comes_back_after_the_block_even_when_it_raises():
    with pytest.raises(RuntimeError), recording_disabled():
        assert not is_recording()
        raise RuntimeError("import failed")

    post = Post.objects.create(user_id=1, title="after")

    assert is_recording()
    assert events() == [(POST, post.pk, "CREATED")]


def test_nested_switches_restore_the_outer_state():
    with recording_disabled():
        with recording_disabled():
            pass
        assert not is_recording()
    assert is_recording()


def test_recording_off_in_another_thread_does_not_stop_this_one():
    switched_off = threading.Event()
    may_finish = threading.Event()
    seen_in_thread: list[bool] = []

    def importer() -> None:
        with recording_disabled():
            seen_in_thread.append(is_recording())
            switched_off.set()
            may_finish.wait(timeout=5)

    thread = threading.Thread(target=importer)
    thread.start()
    try:
        assert switched_off.wait(timeout=5)
        post = Post.objects.create(user_id=1, title="while importing")
    finally:
        may_finish.set()
        thread.join(timeout=5)

    assert seen_in_thread == [False]
    assert events() == [(POST, post.pk, "CREATED")]


def test_recording_off_in_one_task_does_not_stop_another():
    async def importer(switched_off: asyncio.Event, done: asyncio.Event) -> bool:
        with recording_disabled():
            switched_off.set()
            await done.wait()
            return is_recording()

    async def api_request(switched_off: asyncio.Event, done: asyncio.Event) -> bool:
        await switched_off.wait()
        seen = is_recording()
        done.set()
        return seen

    async def main() -> list[bool]:
        switched_off, done = asyncio.Event(), asyncio.Event()
        return await asyncio.gather(importer(switched_off, done), api_request(switched_off, done))

    assert asyncio.run(main()) == [False, True]
