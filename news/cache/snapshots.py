"""Without REDIS_URL, under `serve` on PostgreSQL: answers kept in each worker's memory, under the
database snapshot they were read in.

PostgreSQL's snapshot (`pg_current_snapshot()`: where the transactions stand, those finished and
those still running) changes whenever a transaction that wrote anything ends, in any process.
Two equal snapshots see exactly the same rows. So:

- A read the worker has not kept is answered by Django in a thread, which asks for the snapshot
  before the view reads anything, and keeps the answer under it.
- A read is answered on the worker's event loop (news_project/asgi.py) when an answer to its key
  was kept under the snapshot of now: one statement, which reads no table, on the loop's own
  connection, shared by the reads waiting at the time.
- The snapshot of now being the one an answer was kept under means that no write ended since
  it was taken: not before the view's queries, which saw that snapshot's rows, nor since. An
  answer whose queries saw a write end is kept under a snapshot that never comes back. Once a
  write has been answered, every later read's snapshot has that write in it.

A read with an access token is answered from memory only when its user was let in by Django
under the snapshot of now too: no write since, so that user is still as they were (active, with
the password the token's claim was made from); the token's signature and expiry are checked on
the loop for every read (news/cache/tokens.py). Answers to token reads are kept apart from
anonymous ones, the same for every user, as the API's bodies are.

Any write of the database ends every answer kept (a session, the sync marking its events), which
costs hits, never exactness. A snapshot that cannot be had (the database out of reach) leaves every
read to Django for PAUSE_AFTER_FAILURE seconds. Answers are kept up to NEWS_CACHE_MAX_BYTES each
and KEPT_BYTES a worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time

import psycopg
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections

logger = logging.getLogger("news.cache")

SNAPSHOT = "SELECT pg_current_snapshot()::text"
# Bytes of answers a worker keeps; the oldest go first. And the users it remembers letting in.
KEPT_BYTES = 32 * 1024 * 1024
USERS_KEPT = 10_000
# Seconds the snapshot may take, on the event loop; and without kept answers after a failure.
TIMEOUT = 0.5
PAUSE_AFTER_FAILURE = 5.0


def enabled() -> bool:
    """Answers are kept: no REDIS_URL, NEWS_SNAPSHOT_CACHE on, and the database PostgreSQL."""
    return (
        not settings.REDIS_URL
        and settings.NEWS_SNAPSHOT_CACHE
        and settings.DATABASES[DEFAULT_DB_ALIAS]["ENGINE"].endswith(".postgresql")
    )


class Kept:
    """The answers of one process, by key: (snapshot, headers, body)."""

    def __init__(self) -> None:
        self.answers: dict[str, tuple[str, list, bytes]] = {}
        self.size = 0
        # (user, token's claim) -> the snapshot under which Django let them in.
        self.users: dict[tuple[str, str], str] = {}
        self.lock = threading.Lock()
        self.paused_until = 0.0
        # The running event loop's snapshot reader (see snapshot_now).
        self.reader: tuple[asyncio.AbstractEventLoop, _SnapshotReader] | None = None

    def get(
        self, key: str, snapshot: str, user: tuple[str, str] | None = None
    ) -> tuple[list, bytes] | None:
        """The answer kept under `key`, if it was kept under this snapshot (and the user of a
        token read was let in under it too)."""
        kept = self.answers.get(key)
        if kept is None or kept[0] != snapshot:
            return None
        if user is not None and self.users.get(user) != snapshot:
            return None
        return kept[1], kept[2]

    def keep(
        self,
        key: str,
        snapshot: str,
        headers: list,
        body: bytes,
        user: tuple[str, str] | None = None,
    ) -> None:
        """Keep an answer read under `snapshot`; for a token read, Django let its user in."""
        size = len(body) + len(key)
        with self.lock:
            if user is not None:
                if len(self.users) >= USERS_KEPT:
                    self.users.clear()
                self.users[user] = snapshot
            if (old := self.answers.pop(key, None)) is not None:
                self.size -= len(old[2]) + len(key)
            if size > KEPT_BYTES:
                return
            self.answers[key] = (snapshot, headers, body)
            self.size += size
            while self.size > KEPT_BYTES:
                oldest = next(iter(self.answers))
                self.size -= len(self.answers.pop(oldest)[2]) + len(oldest)

    async def snapshot_now(self) -> str | None:
        """The database's snapshot, taken after this call; None, logged, if it cannot be had
        (and for PAUSE_AFTER_FAILURE seconds after that)."""
        if time.monotonic() < self.paused_until:
            return None
        loop = asyncio.get_running_loop()
        if self.reader is None or self.reader[0] is not loop:
            if self.reader is not None:
                self.reader[1].close()
            self.reader = (loop, _SnapshotReader())
        try:
            return await self.reader[1].snapshot()
        except (psycopg.Error, OSError) as exc:  # a timeout of asyncio is an OSError
            self.pause(exc)
            return None

    def pause(self, exc: Exception) -> None:
        self.paused_until = time.monotonic() + PAUSE_AFTER_FAILURE
        logger.warning(
            "Kept answers: the database's snapshot could not be had (%s); reads go to Django "
            "for %.0f s",
            str(exc).strip() or type(exc).__name__,
            PAUSE_AFTER_FAILURE,
        )


def connection_params() -> dict:
    """What psycopg connects with to the default database, as Django does, but for Django's own
    cursor class and adapters."""
    params = connections[DEFAULT_DB_ALIAS].get_connection_params()
    for name in ("cursor_factory", "context"):
        params.pop(name, None)
    return params


def snapshot_in_thread() -> str | None:
    """The snapshot of now, on this thread's Django connection; None if it cannot be had."""
    try:
        with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
            cursor.execute(SNAPSHOT)
            return cursor.fetchone()[0]
    except Exception:  # the view then meets the same failure, and answers it
        return None


class _SnapshotReader:
    """An event loop's own connection, asking for the snapshot for every read waiting: a read
    that arrives while a question is on its way waits for the next one, asked once that answer
    is in, so that what it gets was taken after it arrived."""

    def __init__(self) -> None:
        self.connection: psycopg.AsyncConnection | None = None
        self.next: asyncio.Future | None = None
        self.asking = False

    async def snapshot(self) -> str:
        if self.next is None:
            self.next = asyncio.get_running_loop().create_future()
        waiting = self.next
        if not self.asking:
            self.asking = True
            asyncio.ensure_future(self._ask())
        return await asyncio.shield(waiting)

    async def _ask(self) -> None:
        """Ask while reads wait: each question answers every read that arrived before it."""
        try:
            while (waiting := self.next) is not None:
                self.next = None
                try:
                    async with asyncio.timeout(TIMEOUT):
                        snapshot = await self._query()
                except BaseException as exc:
                    await self._drop()
                    waiting.set_exception(exc if isinstance(exc, Exception) else OSError(exc))
                    waiting.exception()  # retrieved here too: the reads may have gone
                    if not isinstance(exc, Exception):
                        raise
                    continue
                waiting.set_result(snapshot)
        finally:
            self.asking = False

    async def _query(self) -> str:
        if self.connection is None or self.connection.closed:
            params = connection_params()
            self.connection = await psycopg.AsyncConnection.connect(**params, autocommit=True)
        cursor = await self.connection.execute(SNAPSHOT)
        row = await cursor.fetchone()
        assert row is not None  # the statement gives one row
        return row[0]

    async def _drop(self) -> None:
        connection, self.connection = self.connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.close()

    def close(self) -> None:
        """Close the connection of a loop that is gone, without it."""
        connection, self.connection = self.connection, None
        if connection is not None:
            connection.pgconn.finish()


kept = Kept()
