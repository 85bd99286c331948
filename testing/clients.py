"""Ways to ask the API: a client with a real token, and a GET through the whole WSGI
application, the read cache in front of Django."""

from __future__ import annotations

import io
import json
import sys

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
