"""Sync test fixtures: rows, a seeded target, a sync run, and what the target should hold."""

import socket
from typing import Any

import pytest
from django.db import connection

from news.models import Comment, Post
from sync.models import EntitySyncState, ModelEvent
from sync.planner import EntityKey, Kind, Op, Phase
from sync.recording import recording_disabled
from sync.syncing import SyncOptions, SyncReport, outcomes, sync_changes
from sync.target import TABLES

PHASE_OF = {
    ("POST", "/posts"): Phase.POST_CREATE,
    ("PUT", "/posts"): Phase.POST_UPDATE,
    ("POST", "/comments"): Phase.COMMENT_CREATE,
    ("PUT", "/comments"): Phase.COMMENT_UPDATE,
    ("DELETE", "/comments"): Phase.COMMENT_DELETE,
    ("DELETE", "/posts"): Phase.POST_DELETE,
}


@pytest.fixture(scope="session")
def _lock_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("sync-lock")


@pytest.fixture(autouse=True)
def _own_lock_file(settings, _lock_dir):
    """On SQLite the run lock is a file: one per test session, not the project's own."""
    settings.SYNC_LOCK_FILE = str(_lock_dir / "sync_changes.lock")


@pytest.fixture
def make_post(db):
    def make(*, user_id: int = 1, title: str = "A title", body: str = "A body") -> Post:
        return Post.objects.create(user_id=user_id, title=title, body=body)

    return make


@pytest.fixture
def make_comment(db):
    def make(
        post: Post, *, name: str = "A name", email: str = "a@example.com", body: str = "A body"
    ) -> Comment:
        return Comment.objects.create(post=post, name=name, email=email, body=body)

    return make


@pytest.fixture
def seed(db, fake_target):
    """Rows that are already on the target: in the database without events, and on the target."""

    def make(posts: int, *, comments_per_post: int = 0) -> tuple[list[Post], list[Comment]]:
        with recording_disabled():
            post_rows = Post.objects.bulk_create(
                Post(user_id=1 + n % 3, title=f"post {n}", body=f"body {n}") for n in range(posts)
            )
            comment_rows = Comment.objects.bulk_create(
                Comment(post=post, name=f"name {n}", email=f"c{n}@example.com", body=f"c {n}")
                for post in post_rows
                for n in range(comments_per_post)
            )
        fake_target.load(
            posts=[post_record(post) for post in post_rows],
            comments=[comment_record(comment) for comment in comment_rows],
        )
        # As the import leaves them: the sync knows the target holds each row as it is.
        outcomes.upsert_states(
            [
                outcomes.delivered_state(EntityKey(Kind.POST, post.pk), post_record(post))
                for post in post_rows
            ]
            + [
                outcomes.delivered_state(EntityKey(Kind.COMMENT, c.pk), comment_record(c))
                for c in comment_rows
            ],
            outcomes.DELIVERED_FIELDS,
        )
        return post_rows, comment_rows

    return make


@pytest.fixture
def sync(target_client):
    """Run the service against the fake target; concurrency 1 unless told, so calls are in order."""

    def run(
        *,
        client=None,
        concurrency: int = 1,
        batch_size: int = 500,
        max_attempts: int = 5,
        time_budget: float = 0.0,
        cascade_deletes: bool = False,
        **kwargs,
    ) -> SyncReport:
        return sync_changes(
            client=client or target_client,
            options=SyncOptions(
                concurrency=concurrency,
                batch_size=batch_size,
                max_attempts=max_attempts,
                time_budget=time_budget,
                cascade_deletes=cascade_deletes,
            ),
            **kwargs,
        )

    return run


def post_record(post: Post, *, remote_id: int | None = None) -> dict[str, Any]:
    return {
        "id": remote_id or post.pk,
        "userId": post.user_id,
        "title": post.title,
        "body": post.body,
    }


def comment_record(
    comment: Comment, *, remote_id: int | None = None, post_remote_id: int | None = None
) -> dict[str, Any]:
    return {
        "id": remote_id or comment.pk,
        "postId": post_remote_id or comment.post_id,
        "name": comment.name,
        "email": comment.email,
        "body": comment.body,
    }


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


def target_state(target) -> dict[str, list[dict[str, Any]]]:
    state = target.state()
    return {name: sorted(records, key=lambda r: r["id"]) for name, records in state.items()}


def pending_count() -> int:
    return ModelEvent.objects.pending().count()


def writes(target) -> list[tuple[str, str]]:
    """The write calls the target received, as (method, path), in arrival order."""
    return [(r.method, r.path) for r in target.calls() if r.is_write]


def phases(target) -> list[Phase]:
    """The phase of every write call, in arrival order."""
    return [PHASE_OF[(r.method, "/" + r.path.split("/")[1])] for r in target.calls() if r.is_write]


def calls_by_op(report: SyncReport) -> tuple[int, int, int]:
    return report.calls[Op.CREATE], report.calls[Op.UPDATE], report.calls[Op.DELETE]


def free_port() -> int:
    """A local port nothing listens on (the kernel just handed it out and took it back)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def subprocess_database_url() -> str:
    """A DATABASE_URL for a subprocess that reaches the database these tests run on."""
    db = connection.settings_dict
    if connection.vendor != "postgresql":
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] or ""
    if db.get("PASSWORD"):
        auth += f":{db['PASSWORD']}"
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
