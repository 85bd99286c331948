"""Plain helpers of the sync tests: the target's records, what it got, and free ports."""

import os
import socket
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import connection

from news.models import Comment, Post
from sync.locking import _advisory_key
from sync.models import EntitySyncState, ModelEvent
from sync.planner import Kind, Op, Phase
from sync.syncing import SyncReport
from sync.target import ID_FIELDS, TABLES, comparable_id, to_record

PHASE_OF = {
    ("POST", "/posts"): Phase.POST_CREATE,
    ("PUT", "/posts"): Phase.POST_UPDATE,
    ("POST", "/comments"): Phase.COMMENT_CREATE,
    ("PUT", "/comments"): Phase.COMMENT_UPDATE,
    ("DELETE", "/comments"): Phase.COMMENT_DELETE,
    ("DELETE", "/posts"): Phase.POST_DELETE,
}


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


def wait_for(condition: Callable[[], object], *, timeout: float = 15, what: str = "") -> float:
    """Poll until `condition()` is true; the seconds it took. Fails after `timeout` seconds."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what or condition}")
        time.sleep(0.01)
    return time.monotonic() - started


def lose_the_run_lock() -> None:
    """End the database session holding the run lock (PostgreSQL), or remove the lock file."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' "
                "AND objid = %s AND granted AND database = "
                "(SELECT oid FROM pg_database WHERE datname = current_database())",
                [_advisory_key("sync_changes")],
            )
    else:
        os.remove(settings.SYNC_LOCK_FILE)
