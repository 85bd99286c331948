"""Posts and comments made directly in the database (their change events logged as usual)."""

from news.models import Comment, Post


def make_post(*, created_by=None, user_id: int = 1, title: str = "A title", body: str = "A body"):
    return Post.objects.create(created_by=created_by, user_id=user_id, title=title, body=body)


def make_comment(
    post: Post | None = None,
    *,
    created_by=None,
    name: str = "A name",
    email: str = "a@example.com",
    body: str = "A comment",
) -> Comment:
    return Comment.objects.create(
        post=post or make_post(), created_by=created_by, name=name, email=email, body=body
    )
