"""The initial import: copy the target's posts and comments into an empty database, ids kept.

`checks` applies the API's rules to every record; `writing` inserts them in one transaction.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from tqdm import tqdm

from sync.client import TargetApiClient, canonical_url
from sync.errors import ImportRefused, ImportStopped, ImportValidationError, without_password
from sync.importing.checks import RecordProblem, clean_records
from sync.importing.writing import count, refuse_unless_empty, write

__all__ = [
    "ImportRefused",
    "ImportReport",
    "ImportStopped",
    "ImportValidationError",
    "RecordProblem",
]

MAX_PROBLEMS_SHOWN = 10


@dataclass(frozen=True)
class ImportReport:
    source: str
    posts: int
    comments: int
    seconds: float
    fetch_seconds: float
    check_seconds: float
    write_seconds: float

    def __str__(self) -> str:
        return (
            f"Imported {count(self.posts, 'post')} and {count(self.comments, 'comment')} "
            f"from {without_password(self.source)} in {self.seconds:.1f} s"
        )


def import_initial_data(
    *,
    client: TargetApiClient,
    progress: bool = False,
    batch_size: int = 1000,
    max_problems: int = MAX_PROBLEMS_SHOWN,
    stop: Callable[[], bool] = lambda: False,
) -> ImportReport:
    """Read every post and comment from the target and insert them as they are, in one go.

    Refuses a database that already has posts or comments. Every record is checked with the
    API's rules before anything is written; the rows are then inserted in one transaction with
    change recording off (they already exist on the target) and the id sequences are moved past
    the largest imported id, so rows created later through the API get fresh ids. Ids that are
    whole numbers are kept; others (strings such as json-server 1.0's) get local ids, and every
    remote id is kept in the row's sync state. The target becomes the one the sync describes.

    Once `stop()` is true, no call starts and ImportStopped is raised at the next step (between
    reads, and every batch of checks or rows): the transaction is rolled back, nothing written.
    """
    started = time.perf_counter()
    client.stop_when = stop
    refuse_unless_empty()
    raw_posts = client.list("posts")
    _stop_if_asked(stop)
    raw_comments = client.list("comments")
    _stop_if_asked(stop)
    fetched = time.perf_counter()

    total = len(raw_posts) + len(raw_comments)
    with _progress_bar(progress, total, "Checking", stop) as bar:
        posts, comments = clean_records(raw_posts, raw_comments, bar, max_problems)
    del raw_posts, raw_comments
    checked = time.perf_counter()

    with _progress_bar(progress, 2 * (len(posts) + len(comments)), "Importing", stop) as bar:
        write(posts, comments, bar, batch_size, target=canonical_url(client.base_url))
    finished = time.perf_counter()
    return ImportReport(
        source=client.base_url,
        posts=len(posts),
        comments=len(comments),
        seconds=finished - started,
        fetch_seconds=fetched - started,
        check_seconds=checked - fetched,
        write_seconds=finished - checked,
    )


def _stop_if_asked(stop: Callable[[], bool]) -> None:
    if stop():
        raise ImportStopped("stopped before the import was written; nothing was imported")


class _Progress(tqdm):
    """The progress bar (drawn only when enabled), and where a stop is looked for: every step
    of progress, a batch of checked records or of rows written in the transaction."""

    def __init__(self, *args, stop: Callable[[], bool], **kwargs) -> None:
        self.stop = stop
        super().__init__(*args, **kwargs)

    def update(self, n: float | None = 1) -> bool | None:
        _stop_if_asked(self.stop)
        return super().update(n)


def _progress_bar(enabled: bool, total: int, description: str, stop: Callable[[], bool]) -> tqdm:
    return _Progress(
        total=total,
        desc=description,
        unit=" rows",
        file=sys.stdout,
        leave=False,
        disable=not enabled,
        stop=stop,
    )
