"""One sync at a time: a PostgreSQL advisory lock, or a file lock on other databases."""

from __future__ import annotations

import fcntl
import os
import select
import zlib
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from django.conf import settings
from django.db import Error as DatabaseError
from django.db import connection

from sync.errors import SyncError, SyncLocked


def _advisory_key(name: str) -> int:
    return zlib.crc32(f"news-sync:{name}".encode())


class RunLock:
    """The lock a run holds; `lost()` tells whether it still does, `release()` lets it go.

    `quick=True` may answer from a cheaper sign than a full check, for checks between calls.
    """

    def lost(self, *, quick: bool = False) -> bool:
        raise NotImplementedError

    def release(self) -> None:
        raise NotImplementedError


class AdvisoryLock(RunLock):
    """Held by one PostgreSQL session: it ends with the session, so a killed run frees it."""

    def __init__(self, key: int) -> None:
        self.key = key
        # The session that holds the lock, so any thread can watch it without a query.
        self.session = connection.connection
        self.released = False

    def lost(self, *, quick: bool = False) -> bool:
        if quick:
            return _has_news_from_server(self.session)
        try:
            with connection.cursor() as cursor:
                # A key below 2**32 is held with classid 0 and objid = key.
                cursor.execute(
                    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' "
                    "AND pid = pg_backend_pid() AND classid = 0 AND objid = %s AND granted)",
                    [self.key],
                )
                return not cursor.fetchone()[0]
        except DatabaseError:
            return True  # the session is gone, and the lock with it

    def release(self) -> None:
        if self.released:
            return
        self.released = True
        with suppress(DatabaseError), connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [self.key])


class FileLock(RunLock):
    """An flock on a file: lost when the file is removed or replaced under the run."""

    def __init__(self, path: str, fd: int) -> None:
        self.path = path
        self.fd = fd

    def lost(self, *, quick: bool = False) -> bool:
        try:
            return os.stat(self.path).st_ino != os.fstat(self.fd).st_ino
        except OSError:
            return True

    def release(self) -> None:
        fd, self.fd = self.fd, -1
        if fd < 0:
            return
        with suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _has_news_from_server(raw) -> bool:
    """True when the idle session's socket can be read: the server said something (it ends a
    terminated session that way) or closed it. No query is sent."""
    if raw is None or raw.closed:
        return True
    try:
        readable, _, _ = select.select([raw.fileno()], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


def try_lock(name: str = "sync_changes") -> RunLock | None:
    """Take the run lock if it is free, else None; the caller releases it.

    Both locks die with their holder (connection or process), so a killed run never leaves a
    stale lock behind.
    """
    if connection.vendor == "postgresql":
        key = _advisory_key(name)
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
            return AdvisoryLock(key) if cursor.fetchone()[0] else None
    path = lock_file_path(name)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:  # a directory this user may not write to, say
        raise SyncError(
            f"cannot open the run lock file {path} (SYNC_LOCK_FILE): {exc.strerror}"
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return FileLock(path, fd)


def lock_file_path(name: str = "sync_changes") -> str:
    return (
        f"{settings.SYNC_LOCK_FILE}.{name}" if name != "sync_changes" else settings.SYNC_LOCK_FILE
    )


@contextmanager
def exclusive_run(name: str = "sync_changes") -> Iterator[RunLock]:
    """Hold the run lock for the block; raise SyncLocked at once if another process has it."""
    lock = try_lock(name)
    if lock is None:
        where = "" if connection.vendor == "postgresql" else f" ({lock_file_path(name)})"
        raise SyncLocked(f"another {name} run holds the lock{where}; try again later")
    try:
        yield lock
    finally:
        lock.release()
