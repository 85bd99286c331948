"""The read cache in Redis: generations, writes in flight and entries, for one database.

news/cache/__init__.py says how the cache stays exact; this module is the only one that speaks to
Redis.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import NamedTuple

import redis
from django.conf import settings
from django.core.signals import setting_changed
from django.db import DEFAULT_DB_ALIAS, connections
from redis.backoff import NoBackoff
from redis.commands.core import Script
from redis.exceptions import NoPermissionError
from redis.retry import Retry

from news.cache.pipelined import PipelinedRedis

logger = logging.getLogger("news.cache")

# Seconds without the cache after Redis failed to answer; reads go to the database meanwhile.
PAUSE_AFTER_FAILURE = 5.0
# Seconds a write stays "in flight" at most if it never says it committed (rolled back, killed,
# or Redis lost between its commit and its mark): longer than any write transaction should last.
WRITE_LEASE = 60.0
# Bytes of entries a process holds copies of: a lookup that finds the entry unchanged in Redis is
# answered from the copy, without the entry crossing the network again (READ, below).
COPIES_BYTES = 32 * 1024 * 1024
# Seconds a lookup on an event loop takes at most, its connection opened and set up included (its
# usual one command on an open connection is held to the connection's timeout, the same).
LOOKUP_SECONDS = 0.5
# What a hit's usual one command gives when the lookup needs more (ReadCacheStore._read_on_open).
NOT_READ = object()


# One round trip a read: the tables' generations (started if missing), how many writes of them
# are in flight, and the values of the keys after those (the entry; a user's stamp). KEYS:
# generations, in-flight sets, then the keys to get; ARGV: n, token, and the first line of the
# entry this process holds a copy of, if it does: 1 instead of the entry when it starts so. Last,
# the token it was sent: a reply is taken only for the read that asked for it.
READ = """
local n = tonumber(ARGV[1])
local now = redis.call('TIME')
local ms = now[1] * 1000 + math.floor(now[2] / 1000)
local answer, busy = {}, 0
for i = 1, n do
    local generation = redis.call('GET', KEYS[i])
    if not generation then
        redis.call('SET', KEYS[i], ARGV[2], 'NX')
        generation = redis.call('GET', KEYS[i])
    end
    answer[i] = generation
    busy = busy + redis.call('ZCOUNT', KEYS[n + i], ms, '+inf')
end
answer[n + 1] = busy
for i = 2 * n + 1, #KEYS do
    local value = 1
    if i > 2 * n + 1 or not ARGV[3]
        or redis.call('GETRANGE', KEYS[i], 0, #ARGV[3] - 1) ~= ARGV[3] then
        value = redis.call('GET', KEYS[i])
    end
    answer[n + 1 + i - 2 * n] = value
end
answer[#KEYS - n + 2] = ARGV[2]
return answer
"""
# Before a write commits: it is in flight (until it says it is done, or its lease runs out) and
# the tables have a new generation. KEYS: generations, in-flight sets; ARGV: n, token, lease
# in ms, the write's name.
WRITING = """
local n = tonumber(ARGV[1])
local now = redis.call('TIME')
local ms = now[1] * 1000 + math.floor(now[2] / 1000)
for i = 1, n do
    redis.call('ZREMRANGEBYSCORE', KEYS[n + i], '-inf', ms)
    redis.call('ZADD', KEYS[n + i], ms + tonumber(ARGV[3]), ARGV[4])
    redis.call('SET', KEYS[i], ARGV[2])
end
return ARGV[2]
"""
# Once it has committed: no longer in flight, and a new generation again. ARGV: n, token, then
# the names of the writes (those of earlier writes that could not say so too).
WRITTEN = """
local n = tonumber(ARGV[1])
for i = 1, n do
    for j = 3, #ARGV do
        redis.call('ZREM', KEYS[n + i], ARGV[j])
    end
    redis.call('SET', KEYS[i], ARGV[2])
end
return ARGV[2]
"""
# Whether the cache's keys were written by the data Redis holds now. A Redis with persistence
# (RDB, AOF) that restarts, a replica promoted in its master's place, or a master that takes a
# lagging node's data (a full resync) brings back keys from before: generations with the answers
# and users' stamps stored under them, which writes since have made stale. The data's *lineage*,
# its run_id and replication id (INFO), changes with each of those. So when the lineage named
# under KEYS[1] is not the one of now, every key of the cache goes, but for the writes in flight
# (their leases run out by themselves), and the lineage is named. Asked first on every new
# connection, and again at least every RECHECK_SECONDS (a resync keeps connections open); a
# replica takes no writes, so there the script fails, and the cache is not used. KEYS: the key
# naming the lineage; ARGV: a MATCH pattern of the cache's keys, the prefix of the in-flight keys,
# the lineage of now. Answers 'same', or 'new' (none named: a Redis that kept nothing of the
# cache, or came back from before any was named) or 'other', with the count of keys dropped.
RENEW = """
local named = redis.call('GET', KEYS[1])
if named == ARGV[3] then
    return {'same', 0}
end
local cursor, gone = '0', 0
repeat
    local page = redis.call('SCAN', cursor, 'MATCH', ARGV[1], 'COUNT', 1000)
    cursor = page[1]
    for _, key in ipairs(page[2]) do
        if key ~= KEYS[1] and string.sub(key, 1, #ARGV[2]) ~= ARGV[2] then
            redis.call('UNLINK', key)
            gone = gone + 1
        end
    end
until cursor == '0'
redis.call('SET', KEYS[1], ARGV[3])
return {named and 'other' or 'new', gone}
"""
# Seconds between two checks of the lineage on connections already open (RENEW).
RECHECK_SECONDS = 1.0
# What a Redis answers INFO with when it will not say (a renamed command, an ACL): the cache then
# goes on without the check, and says so. Any other refusal (READONLY, MISCONF, BUSY, LOADING)
# fails the connection.
INFO_REFUSED = re.compile(r"^(ERR )?unknown command|^NOPERM", re.IGNORECASE)


# What a Redis that fails, or answers garbage, makes the client raise: besides its own errors,
# a reply of the wrong shape can break the client's handshake (HELLO) in any way.
FAILURES = (redis.RedisError, AttributeError, TypeError, ValueError, IndexError, KeyError)


class WrongReply(redis.RedisError):
    """Redis answered, but not what the command answers: taken as Redis not answering."""


def acknowledged(reply: object, token: str) -> None:
    """A write script answers the token it wrote; anything else is no acknowledgement."""
    if reply != token.encode():
        raise WrongReply(f"expected the token written, got {reply!r:.80}")


def new_token() -> str:
    """Unique in time: never a value an entry was stored under before (the time, then this
    process's random tag and a count of its own, so two at the same nanosecond differ too)."""
    return f"{time.time_ns():x}.{_TAG}{next(_count):x}"


_TAG: str = ""
_count: itertools.count = itertools.count()


def _new_tag() -> None:
    """A process of its own, forked ones included: a tag and a count of its own."""
    global _TAG, _count
    _TAG, _count = secrets.token_hex(4), itertools.count()


_new_tag()
os.register_at_fork(after_in_child=_new_tag)


class Entry(NamedTuple):
    """A stored answer: its first line (JSON: the generations it was stored under, and its
    headers), then its body."""

    meta: bytes
    body: bytes

    @classmethod
    def of(cls, stored: bytes) -> Entry:
        meta, _, body = stored.partition(b"\n")
        return cls(meta, body)

    @property
    def size(self) -> int:
        return len(self.meta) + len(self.body)


# Set while a command runs that says a refused write's cause itself, in its one line.
_refusals_said: ContextVar[bool] = ContextVar("news_cache_refusals_said", default=False)


@contextmanager
def refusals_said_by_caller() -> Iterator[None]:
    """Within this block a write refused (CacheUnavailable) is not logged: the caller (a
    command's one line, refusals_line()) says it, its cause included."""
    token = _refusals_said.set(True)
    try:
        yield
    finally:
        _refusals_said.reset(token)


def refusals_line(exc: CacheUnavailable) -> str:
    """A refused write in one line for a command: the reason, the cause, the setting."""
    cause = f" ({exc.__cause__})" if exc.__cause__ is not None else ""
    return f"{exc}{cause} (REDIS_URL)"


class CacheUnavailable(Exception):
    """A write refused because Redis could not be told of it: answering it would let other
    processes go on serving what it changed. Nothing was changed. The edges answer it: 503 from
    the API (news_project/exceptions.py) and the admin (news_project/middleware.py), one line
    from the import."""

    def __init__(
        self,
        message: str = (
            "The cache of reads (Redis) cannot be reached, so this change could not be made "
            "without leaving stale answers behind; nothing was changed. Try again shortly."
        ),
    ) -> None:
        super().__init__(message)


class ReadCacheStore:
    """The entries and generations of one database's answers, in one Redis database."""

    def __init__(self, url: str, prefix: str, ttl: int, max_bytes: int) -> None:
        self.url = url
        self.client = redis.Redis.from_url(
            url,
            socket_connect_timeout=0.5,
            socket_timeout=0.5,
            retry=Retry(NoBackoff(), 0),
            redis_connect_func=self._connected,
        )
        self.prefix, self.ttl, self.max_bytes = prefix, ttl, max_bytes
        self._read = self.client.register_script(READ)
        self._writing = self.client.register_script(WRITING)
        self._written = self.client.register_script(WRITTEN)
        self._paused_until = 0.0
        self._checked_at = 0.0  # the last RENEW that answered, or began (monotonic)
        self._said_cannot_tell = False
        # Tables whose write committed but could not say so: their lease keeps readers off the
        # cache meanwhile; replaced first thing once Redis answers, before this process reads.
        self._unmarked: set[str] = set()
        self._unmarked_names: set[str] = set()
        self._lock = threading.Lock()
        # Copies of entries this process read or stored, by key, oldest first: see _hold().
        self._copies: dict[str, Entry] = {}
        self._copies_bytes = 0
        # (event loop, its connection): see _script_async.
        self._async: tuple[asyncio.AbstractEventLoop, PipelinedRedis] | None = None

    def _keys(self, tables: Iterable[str]) -> list[str]:
        tables = sorted(tables)
        return self._ordered_keys(tables)

    def _ordered_keys(self, tables: list[str]) -> list[str]:
        return [f"{self.prefix}generation:{t}" for t in tables] + [
            f"{self.prefix}writing:{t}" for t in tables
        ]

    # --- Connections ----------------------------------------------------------------------------

    def _matching(self, kind: str = "") -> str:
        """A SCAN pattern of this store's keys (of one kind: "stamp:"), the prefix taken as is."""
        return re.sub(r"([\\*?\[\]])", r"\\\1", self.prefix + kind) + "*"

    def _renew_command(self, server: object, replication: object) -> tuple[str | int, ...]:
        """The RENEW script for the lineage these INFO answers name (sent whole: it runs once
        a connection, and once a RECHECK_SECONDS)."""
        lineage = _lineage(server, replication)
        run_key, writes = f"{self.prefix}run", f"{self.prefix}writing:"
        return ("EVAL", RENEW, 1, run_key, self._matching(), writes, lineage)

    def _connected(self, connection: redis.Connection) -> None:
        """redis-py's set-up of a new connection (AUTH, SELECT, ...), then RENEW."""
        connection.on_connect()
        self._renew_on(connection)

    def _renew_on(self, connection: redis.Connection) -> None:
        """RENEW on one of redis-py's connections, its answers as Redis sent them."""

        def call(*args: str | int) -> object:
            connection.send_command(*args)
            return connection.read_response()

        try:
            server, replication = call("INFO", "server"), call("INFO", "replication")
        except redis.ResponseError as exc:
            self._cannot_tell(exc)
            return
        self._renewed(call(*self._renew_command(server, replication)))

    async def _opened(self, call) -> None:
        """RENEW, on a connection of an event loop's (news/cache/pipelined.py)."""
        try:
            server, replication = await call("INFO", "server"), await call("INFO", "replication")
        except redis.ResponseError as exc:
            self._cannot_tell(exc)
            return
        self._renewed(await call(*self._renew_command(server, replication)))

    def _recheck(self) -> None:
        """RENEW again, on a connection of the pool, once RECHECK_SECONDS have passed: by the
        first request to see it, not by every one at once."""
        if (now := time.monotonic()) - self._checked_at < RECHECK_SECONDS:
            return
        self._checked_at = now
        pool = self.client.connection_pool
        connection = pool.get_connection()
        try:
            self._renew_on(connection)
        finally:
            pool.release(connection)

    async def _recheck_async(self) -> None:
        if (now := time.monotonic()) - self._checked_at >= RECHECK_SECONDS:
            self._checked_at = now
            await self._opened(self._loop_connection().call)

    def _renewed(self, reply: object) -> None:
        if not (isinstance(reply, list) and len(reply) == 2 and isinstance(reply[1], int)):
            raise WrongReply(f"expected what RENEW answers, got {reply!r:.80}")
        self._checked_at = time.monotonic()
        if reply[0] == b"other" or reply[1]:
            logger.warning(
                "Read cache: Redis holds keys written before its data was last replaced (a restart "
                "from its snapshot, a replica promoted, a full resync): its %d answers, token "
                "checks and generations were dropped",
                reply[1],
            )

    def _cannot_tell(self, exc: redis.ResponseError) -> None:
        """INFO refused: on without the check if Redis will not say (said once a process),
        else the connection fails (raises). redis-py takes NOPERM off an ACL's refusal."""
        if not (isinstance(exc, NoPermissionError) or INFO_REFUSED.match(str(exc))):
            raise exc
        if self._said_cannot_tell:
            return
        self._said_cannot_tell = True
        logger.warning(
            "Read cache: Redis refused to say which data it holds (%s): if it restarts from a "
            "snapshot or fails over, empty its database before the service uses it again",
            exc,
        )

    # --- Writes ----------------------------------------------------------------------------------

    def writing(self, tables: set[str], name: str) -> None:
        """A write of these tables is about to commit: readers keep off their entries until
        written() (or for WRITE_LEASE seconds). Raises CacheUnavailable if Redis cannot be told."""
        token = new_token()
        args: list[int | str] = [len(tables), token, int(WRITE_LEASE * 1000), name]
        try:
            self._recheck()
            acknowledged(self._writing(keys=self._keys(tables), args=args), token)
        except FAILURES as exc:
            self._pause(exc, "could not be told of a write", said=not _refusals_said.get())
            raise CacheUnavailable from exc

    def written(
        self, tables: set[str], name: str = "", *, doing: str = "be told that a write committed"
    ) -> None:
        """The write has committed: new generations, and the write no longer in flight.
        `doing` says what failed, in the log line, if Redis cannot be told."""
        with self._lock:
            tables = tables | self._unmarked
            names = {name} - {""} | self._unmarked_names
        if not tables:
            return
        for attempt in range(3):
            try:
                token = new_token()
                args: list[int | str] = [len(tables), token, *sorted(names)]
                acknowledged(self._written(keys=self._keys(tables), args=args), token)
            except FAILURES as exc:
                error = exc
                time.sleep(0.05 * (attempt + 1))
                continue
            with self._lock:
                self._unmarked -= tables
                self._unmarked_names -= names
            return
        with self._lock:
            self._unmarked |= tables
            self._unmarked_names |= names
        self._pause(error, f"could not {doing}")

    # --- Entries ---------------------------------------------------------------------------------

    def lookup(
        self, key: str, tables: tuple[str, ...], *, stamped: tuple[str, str] | None = None
    ) -> tuple[list[str] | None, Entry | None]:
        """(the tables' generations, the entry) in one round trip; (None, None) when the cache
        must be left alone: Redis paused, or a write of one of the tables in flight.

        With `stamped`, (a table, a value) such as a user's and the token's claim
        (news.cache.tokens): the entry only if that table's stamp holds the value, made under
        the table's generation of now, with nothing of it in flight; (generations, None) if
        not."""
        names, keys = self._lookup_keys(key, tables, stamped)
        copy = self._copies.get(key)
        read = self._read_keys(names, keys, copy)
        return _looked_up(self._with_copy(key, copy, read), stamped)

    async def lookup_async(
        self, key: str, tables: tuple[str, ...], *, stamped: tuple[str, str] | None = None
    ) -> tuple[list[str] | None, Entry | None] | None:
        """lookup(), awaited on an event loop (news_project/asgi.py answers hits there): the
        same script, the same answer. None when only lookup() may tell: this process has a
        committed write to announce first, which lookup() does before it reads."""
        if self._unmarked:
            return None
        if time.monotonic() < self._paused_until:
            return None, None
        names, keys = self._lookup_keys(key, tables, stamped)
        copy = self._copies.get(key)
        args = self._read_args(names, copy)
        all_keys = [*self._ordered_keys(names), *keys]
        deadline = asyncio.get_running_loop().time() + LOOKUP_SECONDS
        try:
            reply = await self._read_on_open(all_keys, args)
            if reply is NOT_READ:
                async with asyncio.timeout_at(deadline):
                    if time.monotonic() - self._checked_at >= RECHECK_SECONDS:
                        await self._recheck_async()
                    reply = await self._script_async(self._read, all_keys, args)
            read = self._unless_busy(*_read_reply(reply, len(names), len(keys), args, copy))
        except (*FAILURES, OSError) as exc:  # a timeout of asyncio is an OSError
            # Whatever went wrong, the answers still to come on this connection are not trusted.
            if self._async is not None:
                self._async[1].close()
            self._pause(exc, "could not read")
            return None, None
        return _looked_up(self._with_copy(key, copy, read), stamped)

    def _with_copy(
        self, key: str, copy: Entry | None, read: tuple[list[str], list] | None
    ) -> tuple[list[str], list] | None:
        """A read whose entry (1 when it is the copy held here) is made an Entry, and held."""
        if read is None:
            return None
        generations, (entry, *values) = read
        if entry == 1:
            entry = copy
        elif entry is not None:
            entry = Entry.of(entry)
            self._hold(key, entry)
        elif copy is not None:
            self._hold(key, None)
        return generations, [entry, *values]

    def _hold(self, key: str, entry: Entry | None) -> None:
        """Hold a copy of the entry under `key` in this process (None: none), within
        COPIES_BYTES: the oldest copies go first."""
        with self._lock:
            if (old := self._copies.pop(key, None)) is not None:
                self._copies_bytes -= old.size
            if entry is None or entry.size > COPIES_BYTES:
                return
            self._copies[key] = entry
            self._copies_bytes += entry.size
            while self._copies_bytes > COPIES_BYTES:
                self._copies_bytes -= self._copies.pop(next(iter(self._copies))).size

    def _lookup_keys(
        self, key: str, tables: tuple[str, ...], stamped: tuple[str, str] | None
    ) -> tuple[list[str], list[str]]:
        """The tables (a stamp's last) and keys of a lookup."""
        extra = [stamped[0]] if stamped else []
        keys = [f"{self.prefix}entry:{key}"] + [f"{self.prefix}stamp:{t}" for t in extra]
        return [*sorted(tables), *extra], keys

    async def _read_on_open(self, keys: list[str], args: list[int | str | bytes]) -> object:
        """A hit's usual way, with no timer of its own: the READ script by its digest on the
        loop's connection when it is open and its lineage checked, one command, which the
        connection holds to its timeout (LOOKUP_SECONDS). NOT_READ when anything more is needed
        (a connection to open, the lineage to check, the script sent whole)."""
        connection = self._loop_connection()
        if not connection.open or time.monotonic() - self._checked_at >= RECHECK_SECONDS:
            return NOT_READ
        try:
            return await connection.call("EVALSHA", self._read.sha, len(keys), *keys, *args)
        except redis.ResponseError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
        return NOT_READ

    async def _script_async(
        self, script: Script, keys: list[str], args: list[int | str | bytes]
    ) -> object:
        """A script registered with redis-py, run on the running event loop's own connection
        (news/cache/pipelined.py): by its digest, or whole if Redis does not hold it yet."""
        connection = self._loop_connection()
        try:
            return await connection.call("EVALSHA", script.sha, len(keys), *keys, *args)
        except redis.ResponseError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
        return await connection.call("EVAL", script.script, len(keys), *keys, *args)

    def _loop_connection(self) -> PipelinedRedis:
        """The running event loop's connection (news/cache/pipelined.py), made on first use."""
        loop = asyncio.get_running_loop()
        if self._async is None or self._async[0] is not loop:
            if self._async is not None:
                self._async[1].close()  # a loop of a process has one connection at a time
            connection = PipelinedRedis(
                self.url,
                timeout=LOOKUP_SECONDS,
                connect_timeout=LOOKUP_SECONDS,
                on_open=self._opened,
            )
            self._async = (loop, connection)
        return self._async[1]

    def stamp_holds(self, table: str, value: str) -> tuple[str | None, str | None]:
        """The table's generation of now (None as `generation` says), and, when its stamp holds
        `value` made under that generation, the stamp's detail (else None): one round trip."""
        read = self._read_keys([table], [f"{self.prefix}stamp:{table}"])
        if read is None:
            return None, None
        (generation,), (stamp,) = read
        detail = _stamp_detail(stamp if isinstance(stamp, bytes) else None, generation, value)
        return generation, detail

    def stamp(self, table: str, generation: str, value: str, ttl: int, *, detail: str = "") -> None:
        """`value` was checked of `table` (a user's state) under this generation: kept `ttl` s,
        and good only while the generation lasts; `detail` says more of what was checked."""
        stamp = _stamp(generation, value) + b"\n" + detail.encode("utf-8", "surrogateescape")
        try:
            self.client.set(f"{self.prefix}stamp:{table}", stamp, ex=ttl)
        except FAILURES as exc:
            self._pause(exc, "could not store")

    def forget_stamps(self) -> None:
        """Every stamp goes: what they were checked against changed without a word per row."""
        try:
            for key in self.client.scan_iter(match=self._matching("stamp:"), count=1000):
                self.client.delete(key)
        except FAILURES as exc:
            self._pause(exc, "could not forget the users' stamps")

    def _read_keys(
        self, tables: list[str], keys: list[str], copy: Entry | None = None
    ) -> tuple[list[str], list[bytes | int | None]] | None:
        """The READ script: the tables' generations, and the values of `keys`; None when a
        write of a table is in flight or the cache must be left alone."""
        if time.monotonic() < self._paused_until:
            return None
        if self._unmarked:
            self.written(set())
            if self._unmarked:
                return None
        args = self._read_args(tables, copy)
        try:
            self._recheck()
            reply = self._read(keys=[*self._ordered_keys(tables), *keys], args=args)
            return self._unless_busy(*_read_reply(reply, len(tables), len(keys), args, copy))
        except FAILURES as exc:
            if isinstance(exc, WrongReply):
                self.client.connection_pool.disconnect()  # what follows on them is not trusted
            self._pause(exc, "could not read")
            return None

    @staticmethod
    def _read_args(tables: list[str], copy: Entry | None = None) -> list[int | str | bytes]:
        if copy is None:
            return [len(tables), new_token()]
        return [len(tables), new_token(), copy.meta + b"\n"]

    @staticmethod
    def _unless_busy(
        generations: list[str], busy: int, values: list
    ) -> tuple[list[str], list] | None:
        """A read's generations and values; None while a write of a table is in flight."""
        return None if busy else (generations, values)

    def save(self, key: str, generations: list[str], headers: list, body: bytes) -> None:
        headers = etagged(headers, body)
        meta = json.dumps({"generations": generations, "headers": headers}).encode()
        try:
            self.client.set(f"{self.prefix}entry:{key}", meta + b"\n" + body, ex=self.ttl)
        except FAILURES as exc:
            self._pause(exc, "could not store")
            return
        self._hold(key, Entry(meta, body))

    def _pause(self, exc: Exception, doing: str, *, said: bool = True) -> None:
        self._paused_until = time.monotonic() + PAUSE_AFTER_FAILURE
        if not said:
            return
        logger.warning(
            "Read cache: Redis %s (%s); reads go to the database for %.0f s",
            doing,
            exc,
            PAUSE_AFTER_FAILURE,
        )


def etagged(headers: list, body: bytes) -> list:
    """The headers of an answer to keep, with an ETag: a stream has none from
    ConditionalGetMiddleware, so it gets the MD5 of its body."""
    if any(name.lower() == "etag" for name, _ in headers):
        return headers
    return [*headers, ["ETag", f'"{hashlib.md5(body, usedforsecurity=False).hexdigest()}"']]


def _looked_up(
    read: tuple[list[str], list] | None, stamped: tuple[str, str] | None
) -> tuple[list[str] | None, Entry | None]:
    """What a lookup answers from the READ script's generations and values (see lookup)."""
    if read is None:
        return None, None
    generations, (entry, *stamp) = read
    if stamped:
        generation = generations.pop()
        if _stamp_detail(stamp[0], generation, stamped[1]) is None:
            return generations, None
    return generations, entry


def _stamp(generation: str, value: str) -> bytes:
    return f"{generation}\n{value}".encode("utf-8", "surrogateescape")


def _stamp_detail(stamp: bytes | None, generation: str, value: str) -> str | None:
    """The detail of a stamp that holds `value` under `generation`; None for any other."""
    head = _stamp(generation, value) + b"\n"
    if stamp is None or not stamp.startswith(head):
        return None
    return stamp[len(head) :].decode("utf-8", "surrogateescape")


def _lineage(server: object, replication: object) -> str:
    """The lineage of Redis's data from its INFO server and INFO replication answers: run_id and
    master_replid."""
    found = [
        re.search(rb"^" + name + rb":(\w+)", text, re.MULTILINE)
        if isinstance(text, bytes)
        else None
        for name, text in ((b"run_id", server), (b"master_replid", replication))
    ]
    if not all(found):
        raise WrongReply(f"INFO names no run_id or master_replid: {server!r:.60}")
    return ".".join(match[1].decode() for match in found if match)


def _read_reply(
    reply: object, tables: int, keys: int, args: list, copy: Entry | None = None
) -> tuple[list[str], int, list[bytes | int | None]]:
    """The READ script's answer to `args`: a generation a table, a count, then a value or nil a
    key (1 for the first when it is the copy held here), and the token it was sent."""
    if not (isinstance(reply, list) and len(reply) == tables + 2 + keys):
        raise WrongReply(f"expected {tables + 2 + keys} values, got {reply!r:.80}")
    if reply[-1] != str(args[1]).encode():
        raise WrongReply(f"the answer to another read (token {reply[-1]!r:.40})")
    generations, busy, values = reply[:tables], reply[tables], reply[tables + 1 : -1]
    if not (
        all(isinstance(value, bytes) for value in generations)
        and isinstance(busy, int)
        and all(
            value is None or isinstance(value, bytes) or (i == 0 and copy and value == 1)
            for i, value in enumerate(values)
        )
    ):
        raise WrongReply(f"values of the wrong types: {reply!r:.80}")
    try:
        return [value.decode() for value in generations], busy, values
    except UnicodeDecodeError as exc:
        raise WrongReply(f"a generation that is not text: {reply!r:.80}") from exc


_store: ReadCacheStore | None = None
_store_lock = threading.Lock()


def get_store() -> ReadCacheStore | None:
    """This process's store, or None without REDIS_URL."""
    global _store
    if not settings.REDIS_URL:
        return None
    with _store_lock:
        if _store is None:
            name = connections[DEFAULT_DB_ALIAS].settings_dict["NAME"]
            _store = ReadCacheStore(
                settings.REDIS_URL,
                # Databases sharing one Redis keep apart: a test database, another deployment.
                prefix=f"news:{name}:",
                ttl=settings.NEWS_CACHE_TTL,
                max_bytes=settings.NEWS_CACHE_MAX_BYTES,
            )
        return _store


def _forget_store(*, setting: str, **kwargs) -> None:
    global _store
    if setting in ("REDIS_URL", "NEWS_CACHE_TTL", "NEWS_CACHE_MAX_BYTES", "DATABASES"):
        _store = None


setting_changed.connect(_forget_store, dispatch_uid="news.cache.forget_store")
