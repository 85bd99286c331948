"""One sync at a time: a PostgreSQL advisory lock, or a file lock on other databases."""

from __future__ import annotations

import fcntl
import os
import zlib
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.db import connection

from sync.errors import SyncLocked


def _advisory_key(name: str) -> int:
    return zlib.crc32(f"news-sync:{name}".encode())


@contextmanager
def exclusive_run(name: str = "sync_changes") -> Iterator[None]:
    """Hold the run lock for the block; raise SyncLocked at once if another process has it.

    Both locks die with their holder (connection or process), so a killed run never leaves a
    stale lock behind.
    """
    if connection.vendor == "postgresql":
        key = _advisory_key(name)
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
            if not cursor.fetchone()[0]:
                raise SyncLocked(f"another {name} run holds the lock; try again later")
        try:
            yield
        finally:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [key])
        return

    path = (
        f"{settings.SYNC_LOCK_FILE}.{name}" if name != "sync_changes" else settings.SYNC_LOCK_FILE
    )
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SyncLocked(
                f"another {name} run holds the lock ({path}); try again later"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
