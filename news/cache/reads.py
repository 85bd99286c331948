"""Reads answered from the read cache before Django runs (news.cache)."""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import re
from collections.abc import Callable, Iterable, Iterator

from django.conf import settings
from django.urls import Resolver404, resolve
from django.utils.http import parse_etags

from news import routes
from news.cache import snapshots, tokens
from news.cache.store import Entry, etagged, get_store

logger = logging.getLogger("news.cache")

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
        "last-modified",
        "cache-control",
        "content-encoding",
        "access-control-allow-origin",
        "access-control-allow-credentials",
        "access-control-expose-headers",
    }
)
# Request headers an answer may vary on: each value (gzip accepted or not) has an entry of its own.
KEYED_ON = frozenset({"accept", "accept-encoding", "origin"})
# Headers a 304 repeats from the answer it stands for (RFC 9110, 15.4.5), and the CORS headers
# that let a page read it, as django-cors-headers puts them on Django's own 304.
NOT_MODIFIED_HEADERS = (
    "etag",
    "cache-control",
    "vary",
    "last-modified",
    "access-control-allow-origin",
    "access-control-allow-credentials",
    "access-control-expose-headers",
)
ACCEPTS_GZIP = re.compile(r"\bgzip\b")
# The environ key under which ReadCache.stored() hands the thread what it looked up on a miss.
LOOKED_UP = "news.cache.looked_up"
# The environ key under which ReadCache.stored() asks the thread, without Redis, to keep the
# answer it gives: (its key, the token's user and claim or None) (news/cache/snapshots.py).
KEEP = "news.cache.keep"
# First lines of entries (generations, headers, and the headers as ASGI sends them) kept parsed,
# per process: an entry read again is not parsed again. Cleared when full.
METAS_KEPT = 4096
_metas: dict[bytes, tuple[list, list, list]] = {}
X_CACHE_HIT = (b"x-cache", b"hit")

# An answer as news_project/asgi.py sends it: status, headers (lower-case names) and body.
Sent = tuple[int, list[tuple[bytes, bytes]], bytes]


def tables_read(path: str) -> tuple[str, ...]:
    """The tables an answer under /news/ depends on: its route's, in news/routes.py."""
    return _tables_read(path, settings.ROOT_URLCONF)


@functools.lru_cache(maxsize=4096)
def _tables_read(path: str, urlconf: str) -> tuple[str, ...]:
    """tables_read(), resolved once a path (a hit is answered without resolving it again)."""
    try:
        route_name = resolve(path, urlconf).url_name
    except Resolver404:
        route_name = None
    return routes.tables_read(route_name)


class ReadCache:
    """Wraps the WSGI application (news_project/wsgi.py): a hit is answered before Django runs
    at all, with neither a request object, middleware, nor the database.

    Only an answer Django gave with 200 to a GET is stored, under the scheme, host, path, query,
    Accept and Origin headers of its request and whether it accepts gzip (the headers answers
    vary on): a host Django refuses, a redirect to https or to a trailing slash, never has an
    entry, so it always reaches Django. A HEAD is answered from the GET's entry.
    """

    def __init__(self, application: Callable) -> None:
        self.application = application

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        store = get_store()
        if store is None and (keep_as := environ.pop(KEEP, None)) is not None:
            return self._keeping(environ, start_response, keep_as)
        looked_up = environ.pop(LOOKED_UP, None)
        request = looked_up[0] if looked_up else _request(environ) if store is not None else None
        if store is None or request is None:
            return self.application(environ, start_response)
        key, stamped, tables = request
        generations, entry = (
            looked_up[1] if looked_up else store.lookup(key, tables, stamped=stamped)
        )
        if (stored := _stored(environ, generations, entry)) is not None:
            status, headers, body = stored
            start_response(status, headers)
            return body
        if generations is None or environ["REQUEST_METHOD"] == "HEAD":
            return self.application(environ, start_response)  # HEAD: answered, never stored

        answer: dict = {}
        chunks = self.application(environ, _storing(start_response, answer))
        if "headers" not in answer:
            return chunks

        def save(body: bytes) -> None:
            store.save(key, generations, answer["headers"], body)

        return _SavingBody(chunks, store.max_bytes, save)

    def _keeping(self, environ: dict, start_response: Callable, keep_as: tuple) -> Iterable[bytes]:
        """Answer with Django, and keep the answer in this process under the database's snapshot
        taken before Django read anything (news/cache/snapshots.py)."""
        before = snapshots.snapshot_in_thread()
        answer: dict = {}
        chunks = self.application(environ, _storing(start_response, answer))
        if before is None or "headers" not in answer:
            return chunks

        key, user = keep_as

        def keep(body: bytes) -> None:
            snapshots.kept.keep(key, before, etagged(answer["headers"], body), body, user)

        return _SavingBody(chunks, settings.NEWS_CACHE_MAX_BYTES, keep)

    async def stored(self, environ: dict) -> Sent | None:
        """The stored answer to this request, ready to send (status, headers, body), looked up
        on the running event loop, so that a hit takes no thread (news_project/asgi.py); None if
        it must be answered by calling this application, which then does not look it up
        again."""
        if (store := get_store()) is None:
            return await _kept(environ)
        if (request := _request(environ)) is None:
            return None
        key, stamped, tables = request
        looked_up = await store.lookup_async(key, tables, stamped=stamped)
        if looked_up is None:
            return None
        generations, entry = looked_up
        if (parsed := _parsed(entry)) is not None and parsed[0] == generations:
            return _sent(environ, *parsed[1:])
        # The entry, judged here already, is not one to answer.
        environ[LOOKED_UP] = (request, (generations, None))
        return None


async def _kept(environ: dict) -> Sent | None:
    """Without Redis: the answer this process kept under the database's snapshot of now, if it
    did; None if Django must answer (and keep its answer: KEEP, for a GET)."""
    if not snapshots.enabled():
        return None
    key, stamped = _cache_key(environ)
    if key is None:
        return None
    if (snapshot := await snapshots.kept.snapshot_now()) is None:
        return None
    if (found := snapshots.kept.get(key, snapshot, stamped)) is not None:
        headers, body = found
        return _sent(environ, headers, _encoded(headers), body)
    if environ["REQUEST_METHOD"] == "GET":
        environ[KEEP] = (key, stamped)
    return None


def _storing(start_response: Callable, answer: dict) -> Callable:
    """start_response, which also puts in `answer` the headers to keep of an answer that may be
    kept (and marks it X-Cache: miss)."""

    def start_storing(status: str, headers: list, exc_info=None):
        if status.startswith("200 ") and storable(headers):
            headers = [*headers, ("X-Cache", "miss")]
            answer["headers"] = [[n, v] for n, v in headers if n.lower() in STORED_HEADERS]
        return start_response(status, headers, exc_info)

    return start_storing


def _request(environ: dict) -> tuple[str, tuple[str, str] | None, tuple[str, ...]] | None:
    """(key, stamp, tables) of a request the cache may answer; None for one it leaves alone."""
    key, stamped = _cache_key(environ)
    if key is None:
        return None
    return key, stamped, tables_read(environ["PATH_INFO"])


def _stored(
    environ: dict, generations: list[str] | None, entry: Entry | None
) -> tuple[str, list[tuple[str, str]], list[bytes]] | None:
    """The answer of a lookup's entry, if it was stored under the generations of now."""
    stored = _parsed(entry)
    if stored is None or stored[0] != generations:
        return None
    return _answer(environ, stored[1], stored[3])


def _parsed(entry: Entry | None) -> tuple[list, list, list, bytes] | None:
    """(generations, headers, the headers encoded, body) of a stored entry; None for no entry,
    and, logged, for one that does not parse (a miss: the answer from the database then replaces
    it)."""
    if entry is None:
        return None
    meta, body = entry
    if (known := _metas.get(meta)) is None:
        if (parsed := _parsed_meta(meta)) is None:
            return None
        if len(_metas) >= METAS_KEPT:
            _metas.clear()
        known = _metas[meta] = (*parsed, _encoded(parsed[1]))
    return *known, body


def _encoded(headers: list) -> list[tuple[bytes, bytes]]:
    """Headers as ASGI has them: lower-case names, in bytes."""
    return [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers]


def _parsed_meta(meta: bytes) -> tuple[list, list] | None:
    """(generations, headers) of an entry's first line; None, logged, if it is not that."""
    try:
        parsed = json.loads(meta)
        generations, headers = parsed["generations"], parsed["headers"]
        if not (
            isinstance(generations, list)
            and isinstance(headers, list)
            and all(
                len(header) == 2 and all(isinstance(h, str) for h in header) for header in headers
            )
            and any(name.lower() == "etag" for name, _ in headers)
        ):
            raise ValueError("not the shape of an entry")
    except (ValueError, TypeError, KeyError) as exc:
        logger.warning("Read cache: an entry does not parse (%s); answered from the database", exc)
        return None
    return generations, headers


def _cache_key(environ: dict) -> tuple[str | None, tuple[str, str] | None]:
    """The entry's key, or None for a request the cache leaves alone; and for a read with a
    token, the stamp its user must have (news.cache.tokens)."""
    path = environ.get("PATH_INFO", "")
    if environ.get("REQUEST_METHOD") not in ("GET", "HEAD") or not path.startswith("/news/"):
        return None, None
    if _other_preconditions(environ):
        return None, None  # Django evaluates them: the cache knows If-None-Match alone
    stamped = None
    if (authorization := environ.get("HTTP_AUTHORIZATION")) is not None:
        # A credential is checked on every request: one that fails here goes to Django, which
        # refuses it; one that passes is answered from the cache only if its user's stamp holds.
        holder = tokens.holder(authorization)
        if holder is None:
            return None, None
        stamped = (tokens.user_table(holder.user_id), holder.claim)
    if not (host := environ.get("HTTP_HOST")):
        return None, None  # Django decides (an empty Host is refused): no entry of a named host
    url = f"{_scheme(environ)}://{host}{environ.get('SCRIPT_NAME', '')}{path}"
    gzip = "gzip" if ACCEPTS_GZIP.search(environ.get("HTTP_ACCEPT_ENCODING", "")) else ""
    origin = environ.get("HTTP_ORIGIN", "")
    # Answers to token reads have headers of their own (Cache-Control: private): their entries
    # are apart from anonymous ones, and the same for every user, as the bodies are.
    credential = "bearer" if stamped else ""
    parts = (
        url,
        environ.get("QUERY_STRING", ""),
        environ.get("HTTP_ACCEPT", ""),
        gzip,
        origin,
        credential,
    )
    key = hashlib.sha256("\n".join(parts).encode("utf-8", "surrogateescape")).hexdigest()
    return key, stamped


def _other_preconditions(environ: dict) -> bool:
    """If-Match, If-Unmodified-Since, or If-Modified-Since without If-None-Match (which
    outranks it): conditions only Django's answer evaluates (news_project/headers.py)."""
    return (
        "HTTP_IF_MATCH" in environ
        or "HTTP_IF_UNMODIFIED_SINCE" in environ
        or ("HTTP_IF_MODIFIED_SINCE" in environ and "HTTP_IF_NONE_MATCH" not in environ)
    )


def _scheme(environ: dict) -> str:
    """The scheme as Django tells it (HttpRequest.scheme), behind a TLS proxy too."""
    if settings.SECURE_PROXY_SSL_HEADER:
        header, secure = settings.SECURE_PROXY_SSL_HEADER
        if (value := environ.get(header)) is not None:
            return "https" if value.split(",", 1)[0].strip() == secure else "http"
    return environ.get("wsgi.url_scheme", "http")


def storable(headers: list[tuple[str, str]]) -> bool:
    """A JSON answer that is the same for every anonymous client."""
    named: dict[str, list[str]] = {}
    for name, value in headers:
        named.setdefault(name.lower(), []).append(value)
    vary = {v.strip().lower() for value in named.get("vary", []) for v in value.split(",") if v}
    return (
        "set-cookie" not in named
        and named.get("content-type", [""])[0].startswith("application/json")
        and vary <= KEYED_ON
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


def _answer(
    environ: dict, headers: list, body: bytes
) -> tuple[str, list[tuple[str, str]], list[bytes]]:
    """The stored answer, or 304 Not Modified when the client holds it already."""
    etag = next(value for name, value in headers if name.lower() == "etag")
    if_none_match = environ.get("HTTP_IF_NONE_MATCH")
    if if_none_match and _matches(etag, parse_etags(if_none_match)):
        kept = [(n, v) for n, v in headers if n.lower() in NOT_MODIFIED_HEADERS]
        return "304 Not Modified", [*kept, ("X-Cache", "hit")], []
    sent = [(name, value) for name, value in headers]
    sent += [("Content-Length", str(len(body))), ("X-Cache", "hit")]
    return "200 OK", sent, [] if environ["REQUEST_METHOD"] == "HEAD" else [body]


def _sent(environ: dict, headers: list, encoded: list[tuple[bytes, bytes]], body: bytes) -> Sent:
    """_answer(), as news_project/asgi.py sends it: the headers of a 200 encoded once an entry."""
    if environ.get("HTTP_IF_NONE_MATCH"):
        status, listed, chunks = _answer(environ, headers, body)
        return int(status[:3]), _encoded(listed), b"".join(chunks)
    length = (b"content-length", b"%d" % len(body))
    sent = b"" if environ["REQUEST_METHOD"] == "HEAD" else body
    return 200, [*encoded, length, X_CACHE_HIT], sent


def _matches(etag: str, candidates: list[str]) -> bool:
    """If-None-Match's weak comparison: W/"x" and "x" are the same."""
    weak = {candidate.removeprefix("W/") for candidate in candidates}
    return "*" in candidates or etag.removeprefix("W/") in weak
