"""Writes racing a DELETE on PostgreSQL: real requests in threads, each on its own connection.

To make the race happen every time rather than now and then, a third connection holds a row lock
while the requests queue up behind it, in a chosen order; then it lets go. The requests run
through the whole stack (the test client, ATOMIC_REQUESTS, DRF, the change-log signals).
"""

import threading

import pytest
from django.db.models.signals import post_save

from news.models import Comment, Post
from sync.models import EventType, ModelEvent
from testing.races import WAIT_SECONDS, ThreadedRequest, race_behind_row_lock

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def events(model, pk: int) -> list[str]:
    return list(
        ModelEvent.objects.filter(entity_table=model._meta.db_table, entity_pk=pk)
        .order_by("id")
        .values_list("type", flat=True)
    )


def assert_never_created_after_deleted(model, pk: int) -> None:
    log = events(model, pk)
    if EventType.DELETED in log:
        assert EventType.CREATED not in log[log.index(EventType.DELETED) :], log


EDITS = [("put", {"title": "Edited", "body": "x"}), ("patch", {"title": "Edited"})]


@pytest.mark.parametrize(("method", "data"), EDITS, ids=["put", "patch"])
def test_an_edit_queued_behind_a_delete_of_its_post_is_404_and_does_not_bring_it_back(
    user, method, data
):
    post = Post.objects.create(created_by=user, user_id=1, title="Original")
    url = f"/news/posts/{post.pk}/"
    delete, edit = ThreadedRequest(user, "delete", url), ThreadedRequest(user, method, url, data)

    race_behind_row_lock("news_post", post.pk, [delete, edit])

    assert delete.status == 204
    assert edit.status == 404, edit.body
    assert not Post.objects.filter(pk=post.pk).exists()
    assert events(Post, post.pk) == ["CREATED", "DELETED"]


@pytest.mark.parametrize(("method", "data"), EDITS, ids=["put", "patch"])
def test_an_edit_ahead_of_a_delete_is_saved_then_deleted(user, method, data):
    post = Post.objects.create(created_by=user, user_id=1, title="Original")
    url = f"/news/posts/{post.pk}/"
    edit, delete = ThreadedRequest(user, method, url, data), ThreadedRequest(user, "delete", url)

    race_behind_row_lock("news_post", post.pk, [edit, delete])

    assert (edit.status, delete.status) == (200, 204)
    assert not Post.objects.filter(pk=post.pk).exists()
    assert events(Post, post.pk) == ["CREATED", "UPDATED", "DELETED"]


COMMENT_EDITS = [
    ("put", {"name": "Edited", "email": "e@example.com"}),
    ("patch", {"name": "Edited"}),
]


@pytest.mark.parametrize(("method", "data"), COMMENT_EDITS, ids=["put", "patch"])
def test_a_comment_edit_queued_behind_its_delete_is_404_and_does_not_bring_it_back(
    user, method, data
):
    post = Post.objects.create(created_by=user, user_id=1, title="Post")
    comment = Comment.objects.create(post=post, created_by=user, name="A", email="a@example.com")
    url = f"/news/comments/{comment.pk}/"
    delete, edit = ThreadedRequest(user, "delete", url), ThreadedRequest(user, method, url, data)

    race_behind_row_lock("news_comment", comment.pk, [delete, edit])

    assert delete.status == 204
    assert edit.status == 404, edit.body
    assert not Comment.objects.filter(pk=comment.pk).exists()
    assert events(Comment, comment.pk) == ["CREATED", "DELETED"]


@pytest.mark.parametrize(("method", "data"), COMMENT_EDITS, ids=["put", "patch"])
def test_a_comment_edit_queued_behind_a_delete_of_its_post_is_404_not_500(user, method, data):
    post = Post.objects.create(created_by=user, user_id=1, title="Post")
    comment = Comment.objects.create(post=post, created_by=user, name="A", email="a@example.com")
    delete = ThreadedRequest(user, "delete", f"/news/posts/{post.pk}/")
    edit = ThreadedRequest(user, method, f"/news/comments/{comment.pk}/", data)

    race_behind_row_lock("news_comment", comment.pk, [delete, edit])

    assert delete.status == 204
    assert edit.status == 404, edit.body
    assert not Post.objects.exists() and not Comment.objects.exists()
    assert events(Comment, comment.pk) == ["CREATED", "DELETED"]


# The two ways to add a comment: under its post's URL, or naming the post in post_id.
COMMENT_CREATES = pytest.mark.parametrize(
    ("url", "data"),
    [
        ("/news/posts/{post}/comments/", {"name": "New", "email": "n@example.com"}),
        ("/news/comments/", {"post_id": "{post}", "name": "New", "email": "n@example.com"}),
    ],
    ids=["under-the-post", "with-post_id"],
)


@COMMENT_CREATES
def test_a_comment_created_while_its_post_is_being_deleted_is_refused_not_500(user, url, data):
    post = Post.objects.create(created_by=user, user_id=1, title="Post")
    delete = ThreadedRequest(user, "delete", f"/news/posts/{post.pk}/")
    data = {key: post.pk if value == "{post}" else value for key, value in data.items()}
    create = ThreadedRequest(user, "post", url.format(post=post.pk), data)

    race_behind_row_lock("news_post", post.pk, [delete, create])

    assert delete.status == 204
    assert create.status in (400, 404), create.body
    assert not Post.objects.exists() and not Comment.objects.exists()


def test_a_comment_delete_racing_the_delete_of_its_post_logs_one_deletion(user):
    post = Post.objects.create(created_by=user, user_id=1, title="Post")
    comment = Comment.objects.create(post=post, created_by=user, name="A", email="a@example.com")
    delete_comment = ThreadedRequest(user, "delete", f"/news/comments/{comment.pk}/")
    delete_post = ThreadedRequest(user, "delete", f"/news/posts/{post.pk}/")

    race_behind_row_lock("news_comment", comment.pk, [delete_comment, delete_post])

    assert (delete_comment.status, delete_post.status) == (204, 204)
    assert events(Comment, comment.pk) == ["CREATED", "DELETED"]
    assert events(Post, post.pk) == ["CREATED", "DELETED"]


def test_free_running_edits_and_deletes_never_resurrect_a_row(user):
    """No lock held: the requests start together and the database decides the order."""
    for _ in range(10):
        post = Post.objects.create(created_by=user, user_id=1, title="Original")
        comment = Comment.objects.create(post=post, created_by=user, name="A", email="a@ex.com")
        requests = [
            ThreadedRequest(user, "patch", f"/news/posts/{post.pk}/", {"title": "Edited"}),
            ThreadedRequest(user, "patch", f"/news/comments/{comment.pk}/", {"name": "Edited"}),
            ThreadedRequest(user, "delete", f"/news/posts/{post.pk}/"),
        ]
        for request in requests:
            request.start()
        for request in requests:
            request.join(WAIT_SECONDS)

        assert [request.status for request in requests][2] == 204
        assert {request.status for request in requests[:2]} <= {200, 404}
        assert not Post.objects.exists() and not Comment.objects.exists()
        assert_never_created_after_deleted(Post, post.pk)
        assert_never_created_after_deleted(Comment, comment.pk)


@COMMENT_CREATES
def test_comments_added_to_one_post_at_once_do_not_wait_for_each_other(user, url, data):
    post = Post.objects.create(created_by=user, user_id=1, title="Post")
    data = {key: post.pk if value == "{post}" else value for key, value in data.items()}
    first = ThreadedRequest(user, "post", url.format(post=post.pk), {**data, "name": "First"})
    second = ThreadedRequest(user, "post", url.format(post=post.pk), {**data, "name": "Second"})
    first_saved, let_go = threading.Event(), threading.Event()

    def hold_the_first(sender, instance, **kwargs) -> None:
        if instance.name == "First":  # its transaction stays open, its locks held
            first_saved.set()
            let_go.wait(WAIT_SECONDS)

    post_save.connect(hold_the_first, sender=Comment, dispatch_uid="test.hold_the_first")
    try:
        first.start()
        assert first_saved.wait(WAIT_SECONDS)
        second.start()
        second.join(WAIT_SECONDS / 2)
        second_done_while_first_open = not second.is_alive()
    finally:
        let_go.set()
        post_save.disconnect(dispatch_uid="test.hold_the_first", sender=Comment)
        first.join(WAIT_SECONDS)
        second.join(WAIT_SECONDS)

    assert second_done_while_first_open
    assert (first.status, second.status) == (201, 201), (first.body, second.body)
    assert sorted(post.comments.values_list("name", flat=True)) == ["First", "Second"]
