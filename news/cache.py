"""A shared cache of anonymous API reads, kept exact by the writes themselves.

With REDIS_URL set, a GET under /news/ without credentials is answered from Redis when an answer
to the same URL (and Accept header) was stored there under the current *generation* of every table
it reads. Each table's generation is a token in Redis that every write replaces once its
transaction has committed, before the write is answered (news's own announcements: post_save,
post_delete, rows_created and rows_updated; post_migrate, which flush and migrate send, replaces
them all). So once a write has been answered, no process serves an answer stored before it: the
entry's generations no longer match. A hit costs one round trip to Redis and is answered before
Django runs (CachedReads wraps the WSGI application): no middleware, no database.

Tokens are unique in time, never counters: a generation key that Redis lost (restart, eviction)
cannot come back with a value an old entry was stored under. Without REDIS_URL, or while Redis
does not answer, every read goes to the database as usual.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Iterator

import redis
from django.conf import settings
from django.core.signals import setting_changed
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models.signals import (
    post_delete,
    post_migrate,
    post_save,
    pre_delete,
    pre_save,
)
from django.utils.http import parse_etags
from redis.backoff import NoBackoff
from redis.retry import Retry
from rest_framework.exceptions import APIException

from news.signals import rows_created, rows_updated

logger = logging.getLogger(__name__)

POSTS, COMMENTS = "news_post", "news_comment"
# Seconds without the cache after Redis failed to answer; reads go to the database meanwhile.
PAUSE_AFTER_FAILURE = 5.0
# Seconds a write stays "in flight" at most if it never says it committed (rolled back, killed,
# or Redis lost between its commit and its mark): longer than any write transaction should last.
WRITE_LEASE = 60.0
# Only headers a read may carry to another client. Set-Cookie is never stored (see storable()).
STORED_HEADERS = frozenset(
    {
        "content-type",
        "vary",
        "allow",
        "x-frame-options",
        "x-content-type-options",
        "referrer-policy",
        "cross-origin-opener-policy",
        "etag",
    }
)


def tables_read(path: str) -> tuple[str, ...]:
    """The tables an answer under /news/ depends on."""
    parts = path.strip("/").split("/")
    if parts[1:2] == ["posts"] and parts[3:4] == ["comments"]:
        return (POSTS, COMMENTS)
    if parts[1:2] == ["posts"]:
        return (POSTS,)
    if parts[1:2] == ["comments"]:
        return (COMMENTS,)
    return (POSTS, COMMENTS)


# One round trip a read: the tables' generations (started if missing), whether a write of one of
# them is in flight, and the entry. KEYS: generations, then in-flight sets, then the entry;
# ARGV: the number of tables, a token for a missing generation.
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
answer[n + 2] = redis.call('GET', KEYS[2 * n + 1])
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
"""


def new_token() -> str:
    """Unique in time: never a value an entry was stored under before."""
    return f"{time.time_ns():x}.{secrets.token_hex(4)}"


class CacheUnavailable(APIException):
    """A write refused because Redis could not be told of it: answering it would let other
    processes go on serving what it changed. Nothing was changed."""

    status_code = 503
    default_detail = (
        "The cache of reads (Redis) cannot be reached, so this change could not be made "
        "without leaving stale answers behind; nothing was changed. Try again shortly."
    )
    default_code = "cache_unavailable"


class ResponseStore:
    """The entries and generations of one database's answers, in one Redis database."""

    def __init__(self, url: str, prefix: str, ttl: int, max_bytes: int) -> None:
        self.url = url
        self.client = redis.Redis.from_url(
            url, socket_connect_timeout=0.5, socket_timeout=0.5, retry=Retry(NoBackoff(), 0)
        )
        self.prefix, self.ttl, self.max_bytes = prefix, ttl, max_bytes
        self._read = self.client.register_script(READ)
        self._writing = self.client.register_script(WRITING)
        self._written = self.client.register_script(WRITTEN)
        self._paused_until = 0.0
        # Tables whose write committed but could not say so: their lease keeps readers off the
        # cache meanwhile; replaced first thing once Redis answers, before this process reads.
        self._unmarked: set[str] = set()
        self._unmarked_names: set[str] = set()
        self._lock = threading.Lock()

    def _keys(self, tables: Iterable[str]) -> list[str]:
        tables = sorted(tables)
        return [f"{self.prefix}generation:{t}" for t in tables] + [
            f"{self.prefix}writing:{t}" for t in tables
        ]

    # --- Writes ----------------------------------------------------------------------------------

    def writing(self, tables: set[str], name: str) -> None:
        """A write of these tables is about to commit: readers keep off their entries until
        written() (or for WRITE_LEASE seconds). Raises CacheUnavailable if Redis cannot be told."""
        args = [len(tables), new_token(), int(WRITE_LEASE * 1000), name]
        try:
            self._writing(keys=self._keys(tables), args=args)
        except redis.RedisError as exc:
            self._pause(exc, "could not be told of a write")
            raise CacheUnavailable from exc

    def written(self, tables: set[str], name: str = "") -> None:
        """The write has committed: new generations, and the write no longer in flight."""
        with self._lock:
            tables = tables | self._unmarked
            names = {name} - {""} | self._unmarked_names
        if not tables:
            return
        for attempt in range(3):
            try:
                args = [len(tables), new_token(), *sorted(names)]
                self._written(keys=self._keys(tables), args=args)
            except redis.RedisError as exc:
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
        self._pause(error, "could not be told that a write committed")

    # --- Entries ---------------------------------------------------------------------------------

    def lookup(self, key: str, tables: tuple[str, ...]) -> tuple[list[str] | None, bytes | None]:
        """(the tables' generations, the entry) in one round trip; (None, None) when the cache
        must be left alone: Redis paused, or a write of one of the tables in flight."""
        if time.monotonic() < self._paused_until:
            return None, None
        if self._unmarked:
            self.written(set())
            if self._unmarked:
                return None, None
        keys = [*self._keys(tables), f"{self.prefix}entry:{key}"]
        try:
            *generations, busy, entry = self._read(keys=keys, args=[len(tables), new_token()])
        except redis.RedisError as exc:
            self._pause(exc, "could not read")
            return None, None
        if busy:
            return None, None
        return [value.decode() for value in generations], entry

    def save(self, key: str, generations: list[str], headers: list, body: bytes) -> None:
        if not any(name.lower() == "etag" for name, _ in headers):
            # A stream's, which ConditionalGetMiddleware leaves without one.
            etag = f'"{hashlib.md5(body, usedforsecurity=False).hexdigest()}"'
            headers = [*headers, ["ETag", etag]]
        meta = json.dumps({"generations": generations, "headers": headers}).encode()
        try:
            self.client.set(f"{self.prefix}entry:{key}", meta + b"\n" + body, ex=self.ttl)
        except redis.RedisError as exc:
            self._pause(exc, "could not store")

    def _pause(self, exc: Exception, doing: str) -> None:
        self._paused_until = time.monotonic() + PAUSE_AFTER_FAILURE
        logger.warning(
            "Response cache: Redis %s (%s); reads go to the database for %.0f s",
            doing,
            exc,
            PAUSE_AFTER_FAILURE,
        )


_store: ResponseStore | None = None
_store_lock = threading.Lock()


def get_store() -> ResponseStore | None:
    """This process's store, or None without REDIS_URL."""
    global _store
    if not settings.REDIS_URL:
        return None
    with _store_lock:
        if _store is None:
            name = connections[DEFAULT_DB_ALIAS].settings_dict["NAME"]
            _store = ResponseStore(
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


# --- Writes ---------------------------------------------------------------------------------------


def tables_written(tables: Iterable[str], *, using: str) -> None:
    """Tell Redis of a write of these tables: before the transaction on `using` commits (once a
    table a transaction), then once it has (at once for a write outside a transaction, which has
    committed already). Raises CacheUnavailable, which rolls the write back, if Redis cannot be
    told before the commit."""
    store = get_store()
    if store is None:
        return
    connection = connections[using]
    if not connection.in_atomic_block:
        store.written(set(tables))
        return
    pending = _pending_write(connection)
    if pending is None:
        pending = _PendingWrite(store)
        connection.on_commit(pending)
    new = set(tables) - pending.tables
    if new:
        # Named before Redis is asked: whatever happens, the commit gives them new generations.
        pending.tables |= new
        store.writing(new, pending.name)


def start_fresh() -> None:
    """New generations for every table, at a server's start: answers stored while this service
    ran without REDIS_URL (and took writes Redis never heard of) are not served."""
    if (store := get_store()) is not None:
        store.written({POSTS, COMMENTS})


class _PendingWrite:
    """The on_commit callback of one transaction, with the tables it writes."""

    def __init__(self, store: ResponseStore) -> None:
        self.store = store
        self.name = new_token()
        self.tables: set[str] = set()

    def __call__(self) -> None:
        self.store.written(self.tables, self.name)


def _pending_write(connection) -> _PendingWrite | None:
    """The callback already waiting for this transaction's commit, if any. A rolled-back
    transaction or savepoint drops its callbacks (its lease then runs out by itself)."""
    for entry in connection.run_on_commit:
        if isinstance(entry[1], _PendingWrite):
            return entry[1]
    return None


# --- Reads ----------------------------------------------------------------------------------------


class CachedReads:
    """Wraps the WSGI application (news_project/wsgi.py): a hit is answered before Django runs
    at all, with neither a request object, middleware, nor the database.

    Only an answer Django gave with 200 is stored, under the scheme, host, path, query and Accept
    header of its request: a host Django refuses, a redirect to https or to a trailing slash,
    never has an entry, so it always reaches Django.
    """

    def __init__(self, application: Callable) -> None:
        self.application = application

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        store = get_store()
        key = _cache_key(environ) if store is not None else None
        if key is None:
            return self.application(environ, start_response)
        generations, entry = store.lookup(key, tables_read(environ["PATH_INFO"]))
        if entry is not None:
            meta, _, body = entry.partition(b"\n")
            meta = json.loads(meta)
            if meta["generations"] == generations:
                return _answer(environ, start_response, meta["headers"], body)
        if generations is None:
            return self.application(environ, start_response)

        answer: dict = {}

        def start_storing(status: str, headers: list, exc_info=None):
            if status.startswith("200 ") and storable(headers):
                headers = [*headers, ("X-Cache", "miss")]
                answer["headers"] = [[n, v] for n, v in headers if n.lower() in STORED_HEADERS]
            return start_response(status, headers, exc_info)

        chunks = self.application(environ, start_storing)
        if "headers" not in answer:
            return chunks

        def save(body: bytes) -> None:
            store.save(key, generations, answer["headers"], body)

        return _SavingBody(chunks, store.max_bytes, save)


def _cache_key(environ: dict) -> str | None:
    """The entry's key, or None for a request the cache leaves alone."""
    path = environ.get("PATH_INFO", "")
    if environ.get("REQUEST_METHOD") != "GET" or not path.startswith("/news/"):
        return None
    if "HTTP_AUTHORIZATION" in environ:
        return None  # a credential is checked on every request: a bad one must still fail
    host = environ.get("HTTP_HOST") or f"{environ.get('SERVER_NAME')}:{environ.get('SERVER_PORT')}"
    url = f"{_scheme(environ)}://{host}{environ.get('SCRIPT_NAME', '')}{path}"
    parts = (url, environ.get("QUERY_STRING", ""), environ.get("HTTP_ACCEPT", ""))
    return hashlib.sha256("\n".join(parts).encode("utf-8", "surrogateescape")).hexdigest()


def _scheme(environ: dict) -> str:
    """The scheme as Django tells it (HttpRequest.scheme), behind a TLS proxy too."""
    if settings.SECURE_PROXY_SSL_HEADER:
        header, secure = settings.SECURE_PROXY_SSL_HEADER
        if (value := environ.get(header)) is not None:
            return "https" if value.split(",", 1)[0].strip() == secure else "http"
    return environ.get("wsgi.url_scheme", "http")


def storable(headers: list[tuple[str, str]]) -> bool:
    """A JSON answer that is the same for every anonymous client."""
    named = {}
    for name, value in headers:
        named.setdefault(name.lower(), []).append(value)
    vary = {v.strip().lower() for value in named.get("vary", []) for v in value.split(",") if v}
    return (
        "set-cookie" not in named
        and named.get("content-type", [""])[0].startswith("application/json")
        and vary <= {"accept"}
    )


class _SavingBody:
    """The body as it goes to the client, kept and saved if it ends within max_bytes: saved before
    its last chunk is sent, so that the client's next read finds it. A client that leaves early
    never reaches the end: nothing is saved. close() reaches Django's response, as WSGI asks."""

    def __init__(self, chunks: Iterable[bytes], max_bytes: int, save: Callable[[bytes], None]):
        self.chunks, self.max_bytes, self.save = chunks, max_bytes, save

    def __iter__(self) -> Iterator[bytes]:
        kept: list[bytes] | None = []
        size = 0
        held = None
        for chunk in self.chunks:
            if held is not None:
                yield held
            held = chunk
            if kept is not None:
                size += len(chunk)
                if size <= self.max_bytes:
                    kept.append(chunk)
                else:
                    kept = None
        if kept is not None:
            self.save(b"".join(kept))
        if held is not None:
            yield held

    def close(self) -> None:
        if hasattr(self.chunks, "close"):
            self.chunks.close()


def _answer(environ: dict, start_response: Callable, headers: list, body: bytes) -> list[bytes]:
    """The stored answer, or 304 Not Modified when the client holds it already."""
    etag = next(value for name, value in headers if name.lower() == "etag")
    if_none_match = environ.get("HTTP_IF_NONE_MATCH")
    if if_none_match and _matches(etag, parse_etags(if_none_match)):
        start_response("304 Not Modified", [("ETag", etag), ("X-Cache", "hit")])
        return []
    sent = [(name, value) for name, value in headers]
    sent += [("Content-Length", str(len(body))), ("X-Cache", "hit")]
    start_response("200 OK", sent)
    return [body]


def _matches(etag: str, candidates: list[str]) -> bool:
    """If-None-Match's weak comparison: W/"x" and "x" are the same."""
    weak = {candidate.removeprefix("W/") for candidate in candidates}
    return "*" in candidates or etag.removeprefix("W/") in weak


# --- Receivers ------------------------------------------------------------------------------------


def on_writing(sender, instance, using, **kwargs) -> None:
    """A save() or delete() outside a transaction commits as it runs: Redis is told before it
    runs (refused with CacheUnavailable if it cannot be), and after, by on_written."""
    if get_store() is not None and not connections[using].in_atomic_block:
        instance._news_cache_write = new_token()
        get_store().writing({sender._meta.db_table}, instance._news_cache_write)


def on_written(sender, using, instance=None, **kwargs) -> None:
    name = getattr(instance, "__dict__", {}).pop("_news_cache_write", "")
    if name and (store := get_store()) is not None:
        store.written({sender._meta.db_table}, name)
        return
    tables_written([sender._meta.db_table], using=using)


def on_migrated(sender, using, **kwargs) -> None:
    # flush and migrate change rows without a model signal: every generation goes.
    tables_written([POSTS, COMMENTS], using=using)


def connect_receivers(models: Iterable[type]) -> None:
    for model in models:
        label = model._meta.label_lower
        for signal, name in (
            (post_save, "saved"),
            (post_delete, "deleted"),
            (rows_created, "rows+"),
            (rows_updated, "rows~"),
        ):
            signal.connect(on_written, sender=model, dispatch_uid=f"news.cache.{name}.{label}")
        for signal, name in ((pre_save, "saving"), (pre_delete, "deleting")):
            signal.connect(on_writing, sender=model, dispatch_uid=f"news.cache.{name}.{label}")
    post_migrate.connect(on_migrated, dispatch_uid="news.cache.migrated")
