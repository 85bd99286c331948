"""Ways to ask the API: a client with a real token, and a GET through the whole WSGI
application, the read cache in front of Django, or through the ASGI application `serve` runs."""

from __future__ import annotations

import asyncio
import io
import json
import os
import sys
from concurrent.futures import Executor, Future

from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken


def bearer_client(user) -> APIClient:
    """An API client that sends a real access token minted for `user`."""
    client = APIClient()
    token = RefreshToken.for_user(user).access_token
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


class WsgiAnswer:
    """What a WSGI application answered, its body read to the end (a stream's too)."""

    def __init__(self, status: str, headers: list[tuple[str, str]], content: bytes) -> None:
        self.status_code = int(status.split()[0])
        self.headers = {name.lower(): value for name, value in headers}
        self.content = content
        self.threaded: bool | None = None  # asgi_get: whether the WSGI application answered

    def json(self):
        return json.loads(self.content)

    def get(self, header: str, default=None):
        return self.headers.get(header.lower(), default)

    def __getitem__(self, header: str) -> str:
        return self.headers[header.lower()]


def wsgi_get(url: str, *, method: str = "GET", **headers: str) -> WsgiAnswer:
    """GET (or `method`) `url` from news_project.wsgi.application, the read cache in front
    of Django; extra CGI-style headers as in Django's test client (HTTP_ACCEPT="text/html")."""
    from news_project.wsgi import application

    path, _, query = url.partition("?")
    environ = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "testserver",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        **headers,
    }
    answer: dict = {}

    def start_response(status, response_headers, exc_info=None):
        answer.update(status=status, headers=response_headers)

    # As Django's test client does: the suite's connection stays open across requests.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        chunks = application(environ, start_response)
        try:
            content = b"".join(chunks)
        finally:
            if hasattr(chunks, "close"):
                chunks.close()
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)
    return WsgiAnswer(answer["status"], answer["headers"], content)


class _Inline(Executor):
    """Runs what is submitted at once, in the caller's thread: the suite's database connection
    and query counts see what the application does. The event loop is running meanwhile, which
    Django refuses unless told that this is so on purpose (DJANGO_ALLOW_ASYNC_UNSAFE)."""

    def submit(self, fn, /, *args, **kwargs) -> Future:
        future: Future = Future()
        before = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:
            future.set_exception(exc)
        finally:
            if before is None:
                del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]
            else:
                os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = before
        return future


def asgi_get(url: str, *, method: str = "GET", **headers: str) -> WsgiAnswer:
    """As wsgi_get, through news_project.asgi as `serve` runs it: a stored answer is looked up
    on the event loop, anything else answered by the WSGI application (here in this thread).
    The answer's `threaded` says whether the WSGI application had to answer."""
    from news_project.asgi import ThreadedWsgi
    from news_project.wsgi import application

    called = []

    def wsgi(environ, start_response):
        called.append(True)
        return application(environ, start_response)

    served = ThreadedWsgi(wsgi, threads=1, stored=application.stored)
    served.threads = _Inline()
    path, _, query = url.partition("?")
    names = {"CONTENT_TYPE": "content-type", "CONTENT_LENGTH": "content-length"}
    headers = {"HTTP_HOST": "testserver", **headers}
    scope_headers = [
        (
            names.get(key, key.removeprefix("HTTP_").lower().replace("_", "-")).encode(),
            value.encode(),
        )
        for key, value in headers.items()
    ]
    scope = {
        "type": "http",
        "method": method,
        "raw_path": path.encode(),
        "path": path,
        "query_string": query.encode(),
        "headers": scope_headers,
        "server": ("testserver", 80),
        "client": ("127.0.0.1", 50000),
        "scheme": "http",
        "http_version": "1.1",
    }
    sent: list[dict] = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        asyncio.run(served(scope, receive, send))
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)
    start = next(m for m in sent if m["type"] == "http.response.start")
    content = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    status = f"{start['status']} -"
    headers_sent = [(n.decode("latin-1"), v.decode("latin-1")) for n, v in start["headers"]]
    answer = WsgiAnswer(status, headers_sent, content)
    answer.threaded = bool(called)
    return answer


def cache_said(answer: WsgiAnswer) -> str | None:
    """What the read cache said of an answer (X-Cache); through ASGI a hit must take no thread:
    the WSGI application never sees it."""
    if answer.threaded is not None:
        assert answer.threaded == (answer.get("X-Cache") != "hit")
    return answer.get("X-Cache")
