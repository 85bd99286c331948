"""Sync test fixtures: the run lock, a seeded target, a target that picks its own ids, a sync run,
an admin client and a monitoring client (what the tests look at: testing/sync.py)."""

import pytest

from news.models import Comment, Post
from sync.planner import EntityKey, Kind
from sync.recording import recording_disabled
from sync.syncing import SyncOptions, SyncReport, outcomes, sync_changes
from testing.sync import FOREIGN_POSTS, comment_record, post_record


@pytest.fixture(scope="session")
def _lock_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("sync-lock")


@pytest.fixture(autouse=True)
def _own_lock_file(settings, _lock_dir):
    """On SQLite the run lock is a file: one per test session, not the project's own."""
    settings.SYNC_LOCK_FILE = str(_lock_dir / "sync_changes.lock")


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
def edited_posts(seed):
    """Posts already on the target, each edited since: one pending update each."""

    def make(count: int, *, title: str = "edited") -> list[Post]:
        posts, _ = seed(count)
        for post in posts:
            post.title = title
            post.save()
        return posts

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


@pytest.fixture
def assigning_target(fake_target):
    """A target that picks its own ids and already holds records of its own."""
    fake_target.assign_ids = True
    fake_target.load(posts=FOREIGN_POSTS, comments=[])
    return fake_target


@pytest.fixture
def admin_client(client, django_user_model):
    """A client logged in as a superuser, root."""
    superuser = django_user_model.objects.create_superuser(
        username="root", email="root@example.com", password="correct-horse-battery"
    )
    client.force_login(superuser)
    return client


@pytest.fixture
def monitoring_client(client, settings):
    """A monitoring system (a Prometheus scraper, a health check): METRICS_TOKEN is set, and it
    sends it as a bearer token."""
    settings.METRICS_TOKEN = "s3cret-scrape-token"
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {settings.METRICS_TOKEN}"
    return client
