"""What sync's tests look at: the records the target must hold and those it holds, the calls it
got, an entity's sync state; and what they start from: a workload of pending changes, the posts
a target holds of its own."""

from typing import Any

from news.models import Comment, Post
from sync.models import EntitySyncState, ModelEvent
from sync.planner import Kind, Op
from sync.syncing import SyncReport
from sync.target import ID_FIELDS, TABLES, comparable_id, to_record


def post_record(post: Post, *, remote_id: int | None = None) -> dict[str, Any]:
    return to_record(post, remote_id=remote_id or post.pk)


def comment_record(
    comment: Comment, *, remote_id: int | None = None, post_remote_id: int | None = None
) -> dict[str, Any]:
    return to_record(comment, remote_id=remote_id or comment.pk, post_remote_id=post_remote_id)


def remote_ids(kind: Kind) -> dict[int, int]:
    return dict(
        EntitySyncState.objects.filter(
            entity_table=TABLES[kind], remote_id__isnull=False
        ).values_list("entity_pk", "remote_id")
    )


def expected_target() -> dict[str, list[dict[str, Any]]]:
    """What the target must hold to equal the database, in the target's shape, sorted by id."""
    posts, comments = remote_ids(Kind.POST), remote_ids(Kind.COMMENT)
    return {
        "posts": sorted(
            (post_record(p, remote_id=posts.get(p.pk)) for p in Post.objects.all()),
            key=lambda record: record["id"],
        ),
        "comments": sorted(
            (
                comment_record(c, remote_id=comments.get(c.pk), post_remote_id=posts.get(c.post_id))
                for c in Comment.objects.all()
            ),
            key=lambda record: record["id"],
        ),
    }


def canonical_state(state: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """Records with their ids as the target compares them ("5" and 5 alike), sorted by id."""

    def canonical(record: dict[str, Any]) -> dict[str, Any]:
        return {
            name: comparable_id(value) if name in ID_FIELDS else value
            for name, value in record.items()
        }

    return {
        name: sorted((canonical(r) for r in records), key=lambda r: str(r["id"]))
        for name, records in state.items()
    }


def target_state(target) -> dict[str, list[dict[str, Any]]]:
    state = target.state()
    return {name: sorted(records, key=lambda r: r["id"]) for name, records in state.items()}


def pending_count() -> int:
    return ModelEvent.objects.pending().count()


def writes(target) -> list[tuple[str, str]]:
    """The write calls the target received, as (method, path), in arrival order."""
    return [(r.method, r.path) for r in target.calls() if r.is_write]


def calls_by_op(report: SyncReport) -> tuple[int, int, int]:
    return report.calls[Op.CREATE], report.calls[Op.UPDATE], report.calls[Op.DELETE]


def state_of(obj) -> EntitySyncState | None:
    """What sync knows of a post or comment on the target, if anything."""
    return EntitySyncState.objects.filter(entity_table=obj._meta.db_table, entity_pk=obj.pk).first()


def make_workload(seed, make_post, make_comment) -> int:
    """Pending creates, updates and deletes of posts and comments; returns the calls they need."""
    posts, comments = seed(16, comments_per_post=2)
    for n in range(16):
        make_comment(make_post(title=f"new {n}"))
    for post in posts[:10]:
        post.title = "changed"
        post.save()
    for comment in comments[:8]:
        comment.body = "changed"
        comment.save()
    for comment in comments[20:24]:
        comment.delete()
    for post in posts[13:]:
        post.delete()  # and their comments
    return 16 + 10 + 16 + 8 + 4 + 3 * 2 + 3


def delivered(obj) -> bool:
    """The sync state says the target holds `obj` under its own id, with no failure pending."""
    state = state_of(obj)
    return (
        state is not None
        and (state.remote_id, state.create_unconfirmed, state.last_error) == (obj.pk, False, "")
        and state.delivered_hash != ""
    )


# The posts of a target's own, ids 1 to 7, that a test finds there before it starts.
FOREIGN_POSTS = [
    {"id": n, "userId": 9, "title": f"theirs {n}", "body": "not ours"} for n in range(1, 8)
]


def with_user(url: str, userinfo: str) -> str:
    """The URL with a user and password (`user:password`, percent-encoded as in a URL)."""
    return url.replace("://", f"://{userinfo}@", 1)
