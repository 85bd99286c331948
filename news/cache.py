"""A shared cache of anonymous API reads, kept exact by the writes themselves.

With REDIS_URL set, a GET under /news/ without credentials is answered from Redis when an answer
to the same URL (and Accept header) was stored there under the current *generation* of every table
it reads. Each table's generation is a token in Redis that every write replaces once its
transaction has committed, before the write is answered (news's own announcements: post_save,
post_delete, rows_created and rows_updated; post_migrate, which flush and migrate send, replaces
them all). So once a write has been answered, no process serves an answer stored before it: the
entry's generations no longer match. A read costs one round trip to Redis, and nothing at all of
the database, when it hits.

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
from django.core.exceptions import DisallowedHost
from django.core.signals import setting_changed
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models.signals import post_delete, post_migrate, post_save
from django.http import HttpRequest, HttpResponse, HttpResponseNotModified
from django.utils.http import parse_etags
from redis.backoff import NoBackoff
from redis.retry import Retry

from news.signals import rows_created, rows_updated

logger = logging.getLogger(__name__)

POSTS, COMMENTS = "news_post", "news_comment"
# Seconds without the cache after Redis failed to answer; reads go to the database meanwhile.
PAUSE_AFTER_FAILURE = 5.0
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


class ResponseStore:
    """The entries and generations of one database's answers, in one Redis database."""

    def __init__(self, url: str, prefix: str, ttl: int, max_bytes: int) -> None:
        self.url = url
        self.client = redis.Redis.from_url(
            url, socket_connect_timeout=0.5, socket_timeout=0.5, retry=Retry(NoBackoff(), 0)
        )
        self.prefix, self.ttl, self.max_bytes = prefix, ttl, max_bytes
        self._paused_until = 0.0
        # Tables whose generation could not be replaced after a commit: replaced first thing once
        # Redis answers again, before this process reads an entry.
        self._unbumped: set[str] = set()
        self._lock = threading.Lock()

    # --- Generations -----------------------------------------------------------------------------

    def _generation_key(self, table: str) -> str:
        return f"{self.prefix}generation:{table}"

    def bump(self, tables: Iterable[str]) -> None:
        """Give each table a new generation: every entry stored under the old one is dead."""
        with self._lock:
            tables = set(tables) | self._unbumped
        token = f"{time.time_ns():x}.{secrets.token_hex(4)}"
        try:
            self.client.mset({self._generation_key(table): token for table in tables})
        except redis.RedisError as exc:
            with self._lock:
                self._unbumped |= tables
            self._pause(exc, "could not mark a write")
            return
        with self._lock:
            self._unbumped -= tables

    # --- Entries ---------------------------------------------------------------------------------

    def lookup(self, key: str, tables: tuple[str, ...]) -> tuple[list[str] | None, bytes | None]:
        """(the tables' generations, the entry) in one round trip; (None, None) if unusable."""
        if time.monotonic() < self._paused_until:
            return None, None
        if self._unbumped:
            self.bump(())
            if self._unbumped:
                return None, None
        keys = [self._generation_key(table) for table in tables]
        try:
            *generations, entry = self.client.mget([*keys, f"{self.prefix}entry:{key}"])
        except redis.RedisError as exc:
            self._pause(exc, "could not read")
            return None, None
        if None in generations:
            # A new or emptied Redis: start the missing generations, then read what they are.
            token = f"{time.time_ns():x}.{secrets.token_hex(4)}"
            try:
                pipe = self.client.pipeline(transaction=False)
                for table_key, value in zip(keys, generations, strict=True):
                    if value is None:
                        pipe.set(table_key, token, nx=True)
                pipe.mget(keys)
                *_, generations = pipe.execute()
            except redis.RedisError as exc:
                self._pause(exc, "could not start the generations")
                return None, None
            if None in generations:
                return None, None
            entry = None
        return [value.decode() for value in generations], entry

    def save(self, key: str, generations: list[str], response: HttpResponse, body: bytes) -> None:
        headers = [[k, v] for k, v in response.items() if k.lower() in STORED_HEADERS]
        if not response.has_header("ETag"):  # a stream's, which ConditionalGetMiddleware skips
            headers.append(["ETag", f'"{hashlib.md5(body, usedforsecurity=False).hexdigest()}"'])
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
    """Replace the tables' generations once the current transaction on `using` commits (at
    once outside one), however many rows it writes: one Redis call per transaction."""
    store = get_store()
    if store is None:
        return
    connection = connections[using]
    if not connection.in_atomic_block:
        store.bump(tables)
        return
    pending = _pending_bump(connection)
    if pending is None:
        pending = _PendingBump(store)
        connection.on_commit(pending)
    pending.tables.update(tables)


class _PendingBump:
    """The on_commit callback of one transaction, collecting the tables it writes."""

    def __init__(self, store: ResponseStore) -> None:
        self.store = store
        self.tables: set[str] = set()

    def __call__(self) -> None:
        self.store.bump(self.tables)


def _pending_bump(connection) -> _PendingBump | None:
    """The callback already waiting for this transaction's commit, if any. A rolled-back
    transaction or savepoint drops its callbacks, and with them the tables they collected."""
    for entry in connection.run_on_commit:
        if isinstance(entry[1], _PendingBump):
            return entry[1]
    return None


# --- Reads ----------------------------------------------------------------------------------------


class ResponseCacheMiddleware:
    """First in MIDDLEWARE: a hit skips everything else, the database included."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        store = get_store()
        key = _cache_key(request) if store is not None else None
        if key is None:
            return self.get_response(request)
        tables = tables_read(request.path)
        generations, entry = store.lookup(key, tables)
        if entry is not None:
            meta, _, body = entry.partition(b"\n")
            meta = json.loads(meta)
            if meta["generations"] == generations:
                return _answer(request, meta["headers"], body)
        response = self.get_response(request)
        if generations is not None and storable(response):
            response["X-Cache"] = "miss"
            if response.streaming:
                response.streaming_content = _saving_stream(
                    response.streaming_content,
                    store.max_bytes,
                    lambda body: store.save(key, generations, response, body),
                )
            elif len(response.content) <= store.max_bytes:
                store.save(key, generations, response, response.content)
        return response


def _cache_key(request: HttpRequest) -> str | None:
    """The entry's key, or None for a request the cache leaves alone."""
    if request.method != "GET" or not request.path.startswith("/news/"):
        return None
    if "HTTP_AUTHORIZATION" in request.META:
        return None  # a credential is checked on every request: a bad one must still fail
    try:
        url = request.build_absolute_uri()
    except DisallowedHost:
        return None
    accept = request.META.get("HTTP_ACCEPT", "")
    return hashlib.sha256(f"{url}\n{accept}".encode()).hexdigest()


def storable(response: HttpResponse) -> bool:
    """A 200 JSON answer that is the same for every anonymous client."""
    vary = {value.strip().lower() for value in response.get("Vary", "").split(",") if value}
    return (
        response.status_code == 200
        and not response.cookies
        and response.get("Content-Type", "").startswith("application/json")
        and vary <= {"accept"}
    )


def _saving_stream(
    chunks: Iterable[bytes], max_bytes: int, save: Callable[[bytes], None]
) -> Iterator[bytes]:
    """The stream as it goes to the client, kept and saved if it ends within max_bytes: saved
    before its last chunk is sent, so that the client's next read finds it. A client that leaves
    early closes the generator: nothing is saved."""
    kept: list[bytes] | None = []
    size = 0
    held = None
    for chunk in chunks:
        if held is not None:
            yield held
        held = chunk
        if kept is not None:
            size += len(chunk)
            if size <= max_bytes:
                kept.append(chunk)
            else:
                kept = None
    if kept is not None:
        save(b"".join(kept))
    if held is not None:
        yield held


def _answer(request: HttpRequest, headers: list[list[str]], body: bytes) -> HttpResponse:
    """The stored answer, or 304 Not Modified when the client holds it already."""
    etag = next(value for name, value in headers if name.lower() == "etag")
    if_none_match = request.META.get("HTTP_IF_NONE_MATCH")
    if if_none_match and _matches(etag, parse_etags(if_none_match)):
        response = HttpResponseNotModified()
        response["ETag"] = etag
    else:
        response = HttpResponse(body)
        for name, value in headers:
            response[name] = value
        response["Content-Length"] = str(len(body))
    response["X-Cache"] = "hit"
    return response


def _matches(etag: str, candidates: list[str]) -> bool:
    """If-None-Match's weak comparison: W/"x" and "x" are the same."""
    weak = {candidate.removeprefix("W/") for candidate in candidates}
    return "*" in candidates or etag.removeprefix("W/") in weak


# --- Receivers ------------------------------------------------------------------------------------


def on_written(sender, using, **kwargs) -> None:
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
    post_migrate.connect(on_migrated, dispatch_uid="news.cache.migrated")
