"""The initial import: copy the target's posts and comments into an empty database, ids kept.

`checks` applies the API's rules to every record; `writing` inserts them in one transaction.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

from tqdm import tqdm

from sync.client import TargetApiClient, canonical_url
from sync.errors import ImportRefused, ImportValidationError
from sync.importing.checks import RecordProblem, clean_records
from sync.importing.writing import count, refuse_unless_empty, write

__all__ = ["ImportRefused", "ImportReport", "ImportValidationError", "RecordProblem"]

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
            f"from {self.source} in {self.seconds:.1f} s"
        )


def import_initial_data(
    *,
    client: TargetApiClient,
    progress: bool = False,
    batch_size: int = 1000,
    max_problems: int = MAX_PROBLEMS_SHOWN,
) -> ImportReport:
    """Read every post and comment from the target and insert them as they are, in one go.

    Refuses a database that already has posts or comments. Every record is checked with the
    API's rules before anything is written; the rows are then inserted in one transaction with
    change recording off (they already exist on the target) and the id sequences are moved past
    the largest imported id, so rows created later through the API get fresh ids. Ids that are
    whole numbers are kept; others (strings such as json-server 1.0's) get local ids, and every
    remote id is kept in the row's sync state. The target becomes the one the sync describes.
    """
    started = time.perf_counter()
    refuse_unless_empty()
    raw_posts = client.list("posts")
    raw_comments = client.list("comments")
    fetched = time.perf_counter()

    with _progress_bar(progress, len(raw_posts) + len(raw_comments), "Checking") as bar:
        posts, comments = clean_records(raw_posts, raw_comments, bar, max_problems)
    del raw_posts, raw_comments
    checked = time.perf_counter()

    with _progress_bar(progress, 2 * (len(posts) + len(comments)), "Importing") as bar:
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


def _progress_bar(enabled: bool, total: int, description: str) -> tqdm:
    return tqdm(
        total=total,
        desc=description,
        unit=" rows",
        file=sys.stdout,
        leave=False,
        disable=not enabled,
    )
