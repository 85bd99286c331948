"""Plain helpers the test suites share: rows made directly, manage.py in a subprocess, tokens,
and real requests made to race each other."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable

import psycopg
from django.conf import settings
from django.db import connection, connections
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from news.models import Comment, Post


def make_post(*, created_by=None, user_id: int = 1, title: str = "A title", body: str = "A body"):
    return Post.objects.create(created_by=created_by, user_id=user_id, title=title, body=body)


def make_comment(
    post: Post | None = None,
    *,
    created_by=None,
    name: str = "A name",
    email: str = "a@example.com",
    body: str = "A comment",
) -> Comment:
    return Comment.objects.create(
        post=post or make_post(), created_by=created_by, name=name, email=email, body=body
    )


def database_url() -> str:
    """A DATABASE_URL that reaches the database the tests run on."""
    db = connection.settings_dict
    if connection.vendor != "postgresql":
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] or ""
    if db.get("PASSWORD"):
        auth += f":{db['PASSWORD']}"
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def manage_env(*, clean: bool = False, **env: str) -> dict[str, str]:
    """The environment of a manage.py subprocess: the suite's, on its database; or, `clean`,
    only PATH and the variables given. Never a developer's .env (DJANGO_ENV_FILE empty)."""
    if clean:
        return {"PATH": os.environ.get("PATH", ""), "DJANGO_ENV_FILE": "", **env}
    base = dict(os.environ)
    base.update(
        DJANGO_SETTINGS_MODULE="news_project.settings",
        DJANGO_SECRET_KEY=settings.SECRET_KEY,
        DJANGO_ENV_FILE="",
        PYTHONUNBUFFERED="1",
    )
    if connection.vendor == "postgresql":
        base["DATABASE_URL"] = database_url()
    return {**base, **env}


def run_manage(*args: str, clean: bool = False, **env: str) -> subprocess.CompletedProcess:
    """Run manage.py with these arguments to the end and capture what it printed."""
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=settings.BASE_DIR,
        env=manage_env(clean=clean, **env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def start_manage(*args: str, **env: str) -> subprocess.Popen:
    """Start manage.py in the background, its output captured."""
    return subprocess.Popen(
        [sys.executable, "manage.py", *args],
        cwd=settings.BASE_DIR,
        env=manage_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def bearer_client(user) -> APIClient:
    """An API client that sends a real access token minted for `user`."""
    client = APIClient()
    token = RefreshToken.for_user(user).access_token
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


# --- Real requests racing each other (PostgreSQL) ---------------------------------------------

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


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


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
            wait_until(lambda n=queued: waiting_on_locks(monitor) >= n, f"{request.method} to wait")
        blocker.rollback()
    for request in requests:
        request.join(WAIT_SECONDS)
        assert not request.is_alive(), f"{request.method} {request.url} did not finish"


# --- The service as it is deployed: `manage.py serve` (granian, news/serving.py) ----------------


class Served:
    """`manage.py serve` serving the suite's database, on a free port; `args` are more of its
    options (`--workers 1`), `env` more of its environment."""

    def __init__(self, *args: str, **env: str) -> None:
        import socket

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        command = [sys.executable, "manage.py", "serve", "--bind", f"127.0.0.1:{port}"]
        # A file, not a pipe: a pipe nobody reads would stop the server once full.
        self.errors = tempfile.TemporaryFile("w+")  # noqa: SIM115 - closed by stop()
        self.process = subprocess.Popen(
            [*command, "--no-access-log", *args],
            cwd=settings.BASE_DIR,
            env=manage_env(DJANGO_DEBUG="0", DJANGO_ALLOWED_HOSTS="127.0.0.1", **env),
            # granian's own log (standard output) and Django's (standard error), in one file.
            stdout=self.errors,
            stderr=self.errors,
            start_new_session=True,  # its workers with it: stop() can kill them all
        )
        deadline = time.monotonic() + 20
        while not self.answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                self.errors.seek(0)
                raise AssertionError(f"manage.py serve did not start: {self.errors.read()}")
            time.sleep(0.05)

    def address(self) -> tuple[str, int]:
        host, port = self.url.removeprefix("http://").split(":")
        return host, int(port)

    def answers(self) -> bool:
        import urllib.request

        try:
            with urllib.request.urlopen(f"{self.url}/health/", timeout=1) as response:
                return response.status == 200
        except OSError:
            return False

    def log(self) -> str:
        """What the server printed so far (granian's start and stop lines, Django's errors)."""
        self.errors.seek(0)
        return self.errors.read()

    def workers(self) -> list[int]:
        children = f"/proc/{self.process.pid}/task/{self.process.pid}/children"
        with open(children) as listing:
            return [int(pid) for pid in listing.read().split()]

    def stop(self) -> None:
        import signal

        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.errors.close()

    def __enter__(self) -> Served:
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()


# --- A GET through the whole WSGI application, as the server calls it ---------------------------


class WsgiAnswer:
    """What a WSGI application answered, its body read to the end (a stream's too)."""

    def __init__(self, status: str, headers: list[tuple[str, str]], content: bytes) -> None:
        self.status_code = int(status.split()[0])
        self.headers = {name.lower(): value for name, value in headers}
        self.content = content

    def json(self):
        import json

        return json.loads(self.content)

    def get(self, header: str, default=None):
        return self.headers.get(header.lower(), default)

    def __getitem__(self, header: str) -> str:
        return self.headers[header.lower()]


def wsgi_get(url: str, *, method: str = "GET", **headers: str) -> WsgiAnswer:
    """GET (or `method`) `url` from news_project.wsgi.application, the cache of reads in front
    of Django; extra CGI-style headers as in Django's test client (HTTP_ACCEPT="text/html")."""
    import io

    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

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


# --- A Redis that answers every command with the same wrong reply --------------------------------


class GarbageRedis:
    """A server on 127.0.0.1 that speaks Redis's protocol and answers every command it is sent
    with `reply` (raw RESP), whatever the command: a Redis gone wrong, or something else on its
    port. `url` names it."""

    def __init__(self, reply: bytes = b"+OK\r\n") -> None:
        import socket

        self.reply = reply
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"redis://127.0.0.1:{self.listener.getsockname()[1]}/0"
        self.commands = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _serve(self, sock) -> None:
        buffer = b""
        with sock:
            while chunk := sock.recv(65536):
                buffer += chunk
                while (rest := _one_command(buffer)) is not None:
                    buffer = rest
                    self.commands += 1
                    sock.sendall(self.reply)

    def close(self) -> None:
        self.listener.close()

    def __enter__(self) -> GarbageRedis:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def _one_command(buffer: bytes) -> bytes | None:
    """What follows the first whole command (a RESP array of bulk strings), or None."""
    line, found, rest = buffer.partition(b"\r\n")
    if not found:
        return None
    for _ in range(int(line[1:])):
        line, found, rest = rest.partition(b"\r\n")
        if not found or len(rest) < int(line[1:]) + 2:
            return None
        rest = rest[int(line[1:]) + 2 :]
    return rest
