"""Waking the followers: PostgreSQL LISTEN/NOTIFY on one channel.

The change log notifies the channel in the transaction that logs events (a trigger, migration
0004), so a listener hears only committed changes. A notification sent while nobody listens is
lost: followers also run every SYNC_INTERVAL seconds.
"""

from __future__ import annotations

import psycopg
from django.db import DatabaseError, connection

CHANNEL = "sync_events"


def notify_followers() -> None:
    """Wake the followers (PostgreSQL; delivered when the current transaction commits)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, '')", [CHANNEL])


class Listener:
    """LISTENs on a psycopg connection of its own, so Django's stays free for the runs.

    Errors of that connection (the server went away) are raised as Django's DatabaseError.
    """

    def __init__(self) -> None:
        params = connection.get_connection_params()
        for name in ("cursor_factory", "context", "prepare_threshold"):
            params.pop(name, None)
        params.setdefault("connect_timeout", 5)
        try:
            self._connection = psycopg.connect(**params, autocommit=True)
            self._connection.execute(f"LISTEN {CHANNEL}")
        except psycopg.Error as exc:
            self.close()
            raise DatabaseError(f"cannot listen for changes: {_first_line(exc)}") from exc

    def wait(self, timeout: float) -> bool:
        """True as soon as a notification arrives, False after `timeout` seconds without one."""
        try:
            received = self._connection.notifies(timeout=timeout, stop_after=1)
            try:
                return next(received, None) is not None
            finally:
                received.close()
        except psycopg.Error as exc:
            raise DatabaseError(f"lost the listening connection: {_first_line(exc)}") from exc

    def close(self) -> None:
        raw = getattr(self, "_connection", None)
        if raw is not None and not raw.closed:
            raw.close()


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
