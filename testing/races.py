"""Real requests racing each other (PostgreSQL): each in its own thread, queued behind a row
lock so that they reach the row in a known order."""

from __future__ import annotations

import threading

import psycopg
from django.db import connection, connections
from rest_framework.test import APIClient

from testing.clients import bearer_client
from testing.waiting import wait_for

WAIT_SECONDS = 10


class ThreadedRequest(threading.Thread):
    """One API request in its own thread, so on its own database connection."""

    def __init__(self, user, method: str, url: str, data=None) -> None:
        """`user` None sends no token."""
        super().__init__(daemon=True)
        self.user, self.method, self.url, self.data = user, method, url, data
        self.status: int | None = None
        self.body = b""

    def run(self) -> None:
        try:
            client = bearer_client(self.user) if self.user else APIClient()
            client.raise_request_exception = False
            response = getattr(client, self.method)(self.url, self.data)
            self.status, self.body = response.status_code, response.content
        finally:
            connections.close_all()


def raw_connection() -> psycopg.Connection:
    db = connection.settings_dict
    return psycopg.connect(
        dbname=db["NAME"],
        user=db.get("USER") or None,
        password=db.get("PASSWORD") or None,
        host=db.get("HOST") or None,
        port=db.get("PORT") or None,
    )


def waiting_on_locks(monitor: psycopg.Connection) -> int:
    row = monitor.execute(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
    ).fetchone()
    return row[0]


def race_behind_row_lock(
    table: str, key: object, requests: list[ThreadedRequest], *, column: str = "id"
) -> None:
    """Lock one row, start the requests one by one, each queued behind the lock, then release.

    PostgreSQL grants a row lock to its waiters in turn, so the requests reach the row in the
    order given: a race made to happen every time rather than now and then.
    """
    with raw_connection() as blocker, raw_connection() as monitor:
        monitor.autocommit = True
        blocker.execute(f"SELECT 1 FROM {table} WHERE {column} = %s FOR UPDATE", [key])
        for queued, request in enumerate(requests, start=1):
            request.start()
            wait_for(
                lambda n=queued: waiting_on_locks(monitor) >= n,
                timeout=WAIT_SECONDS,
                what=f"{request.method} to wait",
            )
        blocker.rollback()
    for request in requests:
        request.join(WAIT_SECONDS)
        assert not request.is_alive(), f"{request.method} {request.url} did not finish"
