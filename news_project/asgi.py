"""The API as `manage.py serve` runs it: granian's asynchronous I/O reads each request, its body
included (news_project/bodies.py), then news_project.wsgi (Django behind the read cache)
answers it in one of the worker's threads.

So a thread is taken only once a request is all here: clients that send their bodies slowly hold
none. A read the read cache holds takes none at all: it is looked up and answered on the event
loop (news/cache/reads.py, ReadCache.stored). An answer of one piece is handed back whole; a
longer one (a `?all=true` stream) is sent chunk by chunk from its thread, each chunk once granian
has room for it, so a stream goes as fast as its client reads and the thread stops as soon as
that client is gone.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import unquote_to_bytes

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "news_project.settings")

from django.conf import settings  # noqa: E402

from news_project.access_log import AccessLog  # noqa: E402
from news_project.bodies import Body, read_body  # noqa: E402
from news_project.wsgi import application as wsgi_application  # noqa: E402

logger = logging.getLogger("news_project.serving")

# An answer up to this size is handed back whole from its thread; a longer one is streamed.
WHOLE_BYTES = 262144
LATE = b'{"detail": "The request body did not arrive within %g seconds."}'
BROKEN = b'{"detail": "Internal server error."}'
MALFORMED = (
    b'{"detail": "The request body could not be read: its framing (Content-Length, '
    b'Transfer-Encoding) is malformed."}'
)
JSON = (b"content-type", b"application/json")
CLOSE = (b"connection", b"close")
# Request headers' names as the environ has them, kept per process; cleared when full.
NAMES_KEPT = 512
_NAMES: dict[bytes, str] = {}


class ClientGone(Exception):
    """The client closed its connection while its answer was being streamed."""


class ThreadedWsgi:
    """An ASGI application: bodies read first, then the WSGI application in a thread.

    With `stored`, an answer that is stored already (the read cache's, news/cache/reads.py) is
    looked up and sent on the event loop: a hit takes no thread. `stored` gives it ready to send
    (status, headers with lower-case names in bytes, body), or None. With `access_log`, each answer
    is logged there as it ends.
    """

    def __init__(
        self,
        application: Callable,
        *,
        threads: int,
        stored: Callable | None = None,
        access_log: AccessLog | None = None,
    ) -> None:
        self.application = application
        self.stored = stored
        self.threads = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="request")
        self.access_log = access_log

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return
        if self.access_log is None:
            await self._answer(scope, receive, send)
            return
        came, started = time.time(), time.perf_counter()
        status = await self._answer(scope, receive, send)
        if status is not None:
            self.access_log.answered(scope, status, came, started)

    async def _answer(self, scope: dict, receive: Callable, send: Callable) -> int | None:
        """Answer the request; the status sent, None when the client left before its body was
        all here."""
        body = await read_body(
            scope["headers"],
            receive,
            limit=settings.DATA_UPLOAD_MAX_MEMORY_SIZE,
            seconds=settings.NEWS_BODY_TIMEOUT,
        )
        if body.gone:
            # granian ends the body the same way when the client left and when its framing is
            # malformed (a chunk size that is no number, Content-Length beside chunked): the
            # one who left reads nothing, the other learns why instead of granian's bare 500.
            try:
                await send({"type": "http.response.start", "status": 400, "headers": [JSON, CLOSE]})
                await send({"type": "http.response.body", "body": MALFORMED})
            except Exception:  # gone indeed: granian refuses to send
                return None
            return 400
        if body.late:
            detail = LATE % settings.NEWS_BODY_TIMEOUT
            await send({"type": "http.response.start", "status": 408, "headers": [JSON, CLOSE]})
            await send({"type": "http.response.body", "body": detail})
            return 408
        answer = Answer(asyncio.get_running_loop(), receive, send, close=not body.read_whole)
        environ = wsgi_environ(scope, body)
        if self.stored is not None and (stored := await self._stored(environ)) is not None:
            answer.status, answer.headers, answer.whole = stored
            await answer.finish()
            return answer.status
        await answer.loop.run_in_executor(self.threads, answer.run, self.application, environ)
        await answer.finish()
        return answer.status

    async def _stored(self, environ: dict) -> tuple | None:
        """The stored answer, if there is one; None, logged, if looking for it failed (the
        thread then answers as usual)."""
        try:
            return await self.stored(environ)
        except Exception:
            logger.exception("Looking for a stored answer to %s failed", environ["PATH_INFO"])
            return None


class Answer:
    """One request's answer, produced in a thread and sent from the event loop."""

    def __init__(self, loop, receive: Callable, send: Callable, *, close: bool) -> None:
        self.loop, self.receive, self.send, self.close = loop, receive, send, close
        self.status, self.headers = 500, [JSON]
        self.whole: bytes | None = BROKEN
        self.streaming = False
        self.gone = False
        self.watcher: asyncio.Task | None = None

    # --- In the thread ---------------------------------------------------------------------------

    def start_response(self, status: str, headers: list, exc_info=None) -> Callable:
        self.status = int(status.split(" ", 1)[0])
        self.headers = [(n.lower().encode("latin-1"), v.encode("latin-1")) for n, v in headers]
        return self._write

    def run(self, application: Callable, environ: dict) -> None:
        try:
            chunks = application(environ, self.start_response)
        except Exception:
            logger.exception("The application failed on %s", environ.get("PATH_INFO"))
            self.status, self.headers, self.whole = 500, [JSON], BROKEN
            return
        try:
            kept, size = [], 0
            for chunk in chunks:
                if self.streaming:
                    self._write(chunk)
                    continue
                kept.append(chunk)
                size += len(chunk)
                if size > WHOLE_BYTES:
                    if environ["REQUEST_METHOD"] == "HEAD":
                        kept = []  # a HEAD sends no body: the rest is not even produced
                        break
                    self._write(b"".join(kept))
            if self.streaming:
                self._to_loop({"type": "http.response.body", "body": b""})
            else:
                self.whole = b"".join(kept)
        except ClientGone:
            pass
        except Exception:
            logger.exception("The answer to %s failed", environ.get("PATH_INFO"))
            if not self.streaming:
                self.status, self.headers, self.whole = 500, [JSON], BROKEN
        finally:
            if hasattr(chunks, "close"):
                chunks.close()

    def _write(self, data: bytes) -> None:
        if not self.streaming:
            self.streaming, self.whole = True, None
            self._to_loop({"type": "http.response.start", **self._start()}, watch=True)
        if data:
            self._to_loop({"type": "http.response.body", "body": data, "more_body": True})

    def _to_loop(self, message: dict, *, watch: bool = False) -> None:
        """Send from the thread once granian has room for it; ClientGone if the client left."""
        if self.gone:
            raise ClientGone
        asyncio.run_coroutine_threadsafe(self._deliver(message, watch), self.loop).result()
        if self.gone:
            raise ClientGone

    # --- On the event loop -----------------------------------------------------------------------

    async def _deliver(self, message: dict, watch: bool) -> None:
        if watch and not self.close:
            self.watcher = asyncio.ensure_future(self._watch())
        await self.send(message)

    async def _watch(self) -> None:
        """Once the body has been read, the next message granian gives is the disconnect."""
        message = await self.receive()
        if message["type"] == "http.disconnect":
            self.gone = True

    def _start(self) -> dict:
        headers = [*self.headers, CLOSE] if self.close else self.headers
        return {"status": self.status, "headers": headers}

    async def finish(self) -> None:
        if self.watcher is not None:
            self.watcher.cancel()
        if self.whole is not None:
            await self.send({"type": "http.response.start", **self._start()})
            await self.send({"type": "http.response.body", "body": self.whole})


def wsgi_environ(scope: dict, body: Body) -> dict:
    """The WSGI environ of an ASGI HTTP scope, as granian's own WSGI interface builds it."""
    server_host, server_port = scope.get("server") or ("", "")
    client_host, client_port = scope.get("client") or ("", "")
    version = scope.get("http_version", "1.1")
    environ = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": "",
        "PATH_INFO": (
            unquote_to_bytes(raw_path) if b"%" in (raw_path := scope["raw_path"]) else raw_path
        ).decode("latin-1"),
        "QUERY_STRING": scope["query_string"].decode("latin-1"),
        "SERVER_NAME": str(server_host),
        "SERVER_PORT": str(server_port),
        "REMOTE_ADDR": str(client_host),
        "REMOTE_PORT": str(client_port),
        "SERVER_PROTOCOL": "HTTP/1.0" if version == "1" else f"HTTP/{version}",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.input": io.BytesIO(body.data),
        "wsgi.input_terminated": True,
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    for raw_name, raw_value in scope["headers"]:
        if (name := _NAMES.get(raw_name)) is None:
            name = _environ_name(raw_name)
        value = raw_value.decode("latin-1")
        if name in environ:
            value = environ[name] + ("; " if name == "HTTP_COOKIE" else ",") + value
        environ[name] = value
    if body.length:
        environ["CONTENT_LENGTH"] = str(body.length)
    else:
        environ.pop("CONTENT_LENGTH", None)
    return environ


def _environ_name(raw_name: bytes) -> str:
    """The environ's name of a request header (b"x-cache" is HTTP_X_CACHE), kept for the next
    request (up to NAMES_KEPT names)."""
    name = raw_name.decode("latin-1").upper().replace("-", "_")
    if name not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        name = f"HTTP_{name}"
    if len(_NAMES) >= NAMES_KEPT:
        _NAMES.clear()
    _NAMES[raw_name] = name
    return name


def application_for(threads: int, *, access_log: bool = False) -> ThreadedWsgi:
    """The application of one worker process, with this many threads; with `access_log`, a
    line per answer on standard output (news_project/access_log.py)."""
    return ThreadedWsgi(
        wsgi_application,
        threads=threads,
        stored=wsgi_application.stored,
        access_log=AccessLog() if access_log else None,
    )
