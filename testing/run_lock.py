"""The run lock in tests: held by another thread meanwhile, or lost under a run."""

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.db import connection, connections

from sync.locking import _advisory_key, exclusive_run


@contextmanager
def run_lock_held_elsewhere() -> Iterator[None]:
    """Hold the run lock in another thread (its own connection, its own lock file handle) for
    the block, released at its end."""
    taken, release = threading.Event(), threading.Event()

    def hold() -> None:
        try:
            with exclusive_run():
                taken.set()
                release.wait(10)
        finally:
            connections.close_all()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert taken.wait(5), "the other thread did not take the run lock within 5 s"
        yield
    finally:
        release.set()
        holder.join(5)


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
