"""An in-memory HTTP server that behaves like JSONPlaceholder served by json-server.

Used by the test suite (the `fake_target` fixture), the benchmarks and demos
(`python -m sync.fake_target --port 3000 --posts 100`). It needs no Django.

Routes (JSON bodies, camelCase fields; posts `userId, id, title, body`, comments
`postId, id, name, email, body`):

    GET    /posts               every post, in insertion order; `?userId=1` filters by equality
    POST   /posts               201 and the stored record
    GET    /posts/{id}          200, or 404 `{}`
    PUT    /posts/{id}          replaces the record (the id stays), 200; 404 `{}` when unknown
    PATCH  /posts/{id}          merges into the record, 200; 404 `{}` when unknown
    DELETE /posts/{id}          200 `{}` and deletes the post's comments too; 404 `{}` when unknown
    GET    /posts/{id}/comments the post's comments (an empty list for an unknown post)
    POST   /posts/{id}/comments creates a comment with that postId
    ...and the same for /comments (without the nested route and the cascade).

As in json-server, a POST keeps the `id` it is sent and otherwise gets max(id) + 1 (always, with
`assign_ids=True`, like an API that picks its own ids). With `stores_nothing=True` it behaves like
the public JSONPlaceholder site: every write is answered but nothing is kept; a POST answers
id = count + 1 (101 for 100 posts), a PUT of an id it does not have answers 500, a DELETE 200.
A duplicate id answers 500 `{"error": "Insert failed, duplicate id"}`. Stricter than json-server:
ids must be JSON integers (400 otherwise) and a body must be a JSON object (400 otherwise).
Record fields are not checked, as json-server does not check them.

State lives in `server.posts` and `server.comments` ({id: record}); every request is appended to
`server.requests` (`connections_opened` and `max_in_flight` count connections and parallel
requests). Misbehaviour is switched on with `fail`, `answer`, `drop` and `stall`, and a
latency for every answer with `server.latency`. Each handler runs in its own thread, so
concurrent clients are served in parallel; HTTP/1.1 keep-alive works (every answer has a
Content-Length).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import random
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from sync.testdata import COMMENTS_PER_POST, generate_dataset

Record = dict[str, Any]
COLLECTIONS = ("posts", "comments")
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
JSON_TYPE = "application/json; charset=utf-8"
NOT_FOUND = (404, {})


@dataclass
class RecordedRequest:
    """One request as the server received it; `status` is what it answered (None: dropped)."""

    method: str
    path: str
    query: dict[str, list[str]]
    body: Any
    status: int | None = None

    @property
    def is_write(self) -> bool:
        return self.method in WRITE_METHODS


@dataclass
class Fault:
    """A misbehaviour for matching requests; the first matching fault that fires wins.

    `kind` is "answer" (send `status` and `body` instead of serving), "drop" (close the
    connection without answering) or "stall" (wait `seconds`, then serve normally).
    `times` counts the requests it still applies to (None: no limit); `share` is the probability
    that it applies to a matching request (seeded, so runs repeat). With `after_processing` the
    request is served first (a write is applied) and then answered or dropped as told.
    """

    kind: str
    status: int = 500
    body: bytes = b""
    content_type: str = JSON_TYPE
    retry_after: str | None = None
    seconds: float = 0.0
    times: int | None = None
    share: float | None = None
    writes_only: bool = False
    method: str | None = None
    path: str | None = None
    after_processing: bool = False

    def matches(self, method: str, path: str) -> bool:
        if self.writes_only and method not in WRITE_METHODS:
            return False
        if self.method is not None and method != self.method.upper():
            return False
        return (
            self.path is None or path == self.path or path.startswith(self.path.rstrip("/") + "/")
        )


@dataclass
class _Answer:
    status: int | None
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


class FakeTarget:
    """The server: start() it (or use it as a context manager), point clients at `url`."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        posts: list[Record] | None = None,
        comments: list[Record] | None = None,
        latency: float = 0.0,
        seed: int = 0,
        assign_ids: bool = False,
        stores_nothing: bool = False,
    ) -> None:
        self.host = host
        self.port = port
        self.latency = latency
        self.assign_ids = assign_ids
        self.stores_nothing = stores_nothing
        self.posts: dict[int, Record] = {}
        self.comments: dict[int, Record] = {}
        self.requests: list[RecordedRequest] = []
        self.faults: list[Fault] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.connections_opened = 0
        self._random = random.Random(seed)
        self._lock = threading.RLock()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self.load(posts=posts or [], comments=comments or [])

    # --- Lifecycle ------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("the fake target is not running: call start() first")
        return f"http://{self.host}:{self.port}"

    def start(self) -> FakeTarget:
        self._httpd = _Server((self.host, self.port), _Handler, target=self)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.01},
            name=f"fake-target-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and cut every open connection, so no handler outlives the server."""
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        self._httpd.close_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> FakeTarget:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # --- State ----------------------------------------------------------------------------------

    def load(self, *, posts: list[Record], comments: list[Record]) -> None:
        """Replace both collections with copies of these records."""
        with self._lock:
            self.posts = {record["id"]: dict(record) for record in posts}
            self.comments = {record["id"]: dict(record) for record in comments}

    def load_generated(
        self, posts: int, *, comments_per_post: int = COMMENTS_PER_POST, seed: int = 0
    ) -> None:
        """Serve `posts` generated posts and `comments_per_post` comments for each."""
        generated_posts, generated_comments = generate_dataset(
            posts, comments_per_post=comments_per_post, seed=seed
        )
        self.load(posts=generated_posts, comments=generated_comments)

    def state(self) -> dict[str, list[Record]]:
        """A deep copy of both collections as lists, in the order the server lists them."""
        with self._lock:
            return {
                "posts": copy.deepcopy(list(self.posts.values())),
                "comments": copy.deepcopy(list(self.comments.values())),
            }

    # --- Request log ----------------------------------------------------------------------------

    def calls(
        self, method: str | None = None, path_prefix: str | None = None
    ) -> list[RecordedRequest]:
        """Requests received so far, optionally only one method and paths under a prefix."""
        with self._lock:
            return [
                request
                for request in self.requests
                if (method is None or request.method == method.upper())
                and (path_prefix is None or request.path.startswith(path_prefix))
            ]

    def reset_log(self) -> None:
        with self._lock:
            self.requests.clear()
            self.max_in_flight = self.in_flight
            self.connections_opened = 0

    # --- Misbehaviour ---------------------------------------------------------------------------

    def answer(
        self,
        status: int,
        *,
        body: bytes | str | Any = None,
        content_type: str = JSON_TYPE,
        retry_after: str | float | None = None,
        times: int | None = None,
        share: float | None = None,
        writes_only: bool = False,
        method: str | None = None,
        path: str | None = None,
        after_processing: bool = False,
    ) -> Fault:
        """Answer matching requests with `status` and `body` (bytes, text or JSON) instead."""
        if isinstance(body, str):
            raw = body.encode()
        elif isinstance(body, bytes):
            raw = body
        else:
            raw = _dump({"error": HTTPStatus(status).phrase} if body is None else body)
        return self._add(
            Fault(
                kind="answer",
                status=status,
                body=raw,
                content_type=content_type,
                retry_after=None if retry_after is None else str(retry_after),
                times=times,
                share=share,
                writes_only=writes_only,
                method=method,
                path=path,
                after_processing=after_processing,
            )
        )

    def fail(self, status: int = 500, **options) -> Fault:
        """Answer matching requests with an error status (a 429 gets `Retry-After: 1`).

        Options are those of `answer`: times, share, writes_only, method, path, retry_after,
        body, after_processing.
        """
        if status == 429:
            options.setdefault("retry_after", 1)
        return self.answer(status, **options)

    def drop(
        self,
        *,
        times: int | None = None,
        share: float | None = None,
        writes_only: bool = False,
        method: str | None = None,
        path: str | None = None,
        after_processing: bool = False,
    ) -> Fault:
        """Close the connection without answering; with `after_processing` apply the write first."""
        return self._add(
            Fault(
                kind="drop",
                times=times,
                share=share,
                writes_only=writes_only,
                method=method,
                path=path,
                after_processing=after_processing,
            )
        )

    def stall(
        self,
        seconds: float,
        *,
        times: int | None = None,
        share: float | None = None,
        writes_only: bool = False,
        method: str | None = None,
        path: str | None = None,
    ) -> Fault:
        """Wait `seconds` (on top of `latency`) before serving matching requests."""
        return self._add(
            Fault(
                kind="stall",
                seconds=seconds,
                times=times,
                share=share,
                writes_only=writes_only,
                method=method,
                path=path,
            )
        )

    def clear_faults(self) -> None:
        with self._lock:
            self.faults.clear()

    def _add(self, fault: Fault) -> Fault:
        with self._lock:
            self.faults.append(fault)
        return fault

    def _take_fault(self, method: str, path: str) -> Fault | None:
        for fault in self.faults:
            if not fault.matches(method, path):
                continue
            if fault.share is not None and self._random.random() >= fault.share:
                continue
            if fault.times is not None:
                fault.times -= 1
                if fault.times <= 0:
                    self.faults.remove(fault)
            return fault
        return None

    # --- Serving --------------------------------------------------------------------------------

    def _handle(self, method: str, raw_path: str, raw_body: bytes) -> _Answer:
        parts = urlsplit(raw_path)
        path = "/" + parts.path.strip("/")
        query = parse_qs(parts.query)
        body, body_error = _parse_body(raw_body)
        request = RecordedRequest(method=method, path=path, query=query, body=body)
        with self._lock:
            self.requests.append(request)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            fault = self._take_fault(method, path)
        try:
            delay = self.latency + (fault.seconds if fault and fault.kind == "stall" else 0.0)
            if delay > 0:
                time.sleep(delay)
            if fault is not None and fault.kind != "stall" and not fault.after_processing:
                answer = _fault_answer(fault)
            else:
                if body_error is not None:
                    status, payload = 400, {"error": body_error}
                else:
                    with self._lock:
                        status, payload = self._route(method, path, query, body)
                answer = _Answer(status, _dump(payload), {"Content-Type": JSON_TYPE})
                if fault is not None and fault.kind != "stall":
                    answer = _fault_answer(fault)
            request.status = answer.status
            return answer
        finally:
            with self._lock:
                self.in_flight -= 1

    def _route(
        self, method: str, path: str, query: dict[str, list[str]], body: Any
    ) -> tuple[int, Any]:
        segments = path.strip("/").split("/")
        name = segments[0]
        if name not in COLLECTIONS or len(segments) > 3:
            return NOT_FOUND
        collection = self.posts if name == "posts" else self.comments
        if len(segments) == 1:
            if method == "GET":
                return 200, _filtered(collection.values(), query)
            if method == "POST":
                return self._create(collection, body)
            return NOT_FOUND
        record_id = _int_or_none(segments[1])
        if record_id is None:
            return NOT_FOUND
        if len(segments) == 3:
            if name != "posts" or segments[2] != "comments":
                return NOT_FOUND
            if method == "GET":
                comments = (c for c in self.comments.values() if c.get("postId") == record_id)
                return 200, _filtered(comments, query)
            if method == "POST":
                if not isinstance(body, dict):
                    return 400, {"error": "the body must be a JSON object"}
                return self._create(self.comments, {**body, "postId": record_id})
            return NOT_FOUND
        record = collection.get(record_id)
        if self.stores_nothing and method in WRITE_METHODS:
            return _answer_without_storing(method, record_id, record, body)
        if record is None:
            return NOT_FOUND
        if method == "GET":
            return 200, record
        if method in {"PUT", "PATCH"}:
            if not isinstance(body, dict):
                return 400, {"error": "the body must be a JSON object"}
            replaced = dict(body) if method == "PUT" else {**record, **body}
            replaced["id"] = record_id
            collection[record_id] = replaced
            return 200, replaced
        if method == "DELETE":
            del collection[record_id]
            if name == "posts":
                orphans = [cid for cid, c in self.comments.items() if c.get("postId") == record_id]
                for comment_id in orphans:
                    del self.comments[comment_id]
            return 200, {}
        return NOT_FOUND

    def _create(self, collection: dict[int, Record], body: Any) -> tuple[int, Any]:
        if not isinstance(body, dict):
            return 400, {"error": "the body must be a JSON object"}
        record = dict(body)
        if self.stores_nothing:
            return 201, {**record, "id": len(collection) + 1}
        if self.assign_ids or record.get("id") is None:
            record["id"] = max(collection, default=0) + 1
        elif isinstance(record["id"], bool) or not isinstance(record["id"], int):
            return 400, {"error": "id must be an integer"}
        elif record["id"] in collection:
            return 500, {"error": "Insert failed, duplicate id"}
        collection[record["id"]] = record
        return 201, record


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address, handler, *, target: FakeTarget) -> None:
        self.target = target
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, handler)

    def close_connections(self) -> None:
        with self.connections_lock:
            connections = list(self.connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request, client_address) -> None:
        """Clients that hang up (timeouts, dropped connections) are normal here."""
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeTarget/1.0"
    timeout = 60  # an idle keep-alive connection is closed after this many seconds
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms stall
    server: _Server

    def setup(self) -> None:
        super().setup()
        with self.server.connections_lock:
            self.server.connections.add(self.connection)
        with self.server.target._lock:
            self.server.target.connections_opened += 1

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        pass

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw_body = self.rfile.read(length) if length > 0 else b""
        answer = self.server.target._handle(self.command, self.path, raw_body)
        if answer.status is None:
            self.close_connection = True
            return
        try:
            self.send_response(answer.status)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            self.wfile.write(answer.body)
            self.wfile.flush()
        except OSError:
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve


def _answer_without_storing(
    method: str, record_id: int, record: Record | None, body: Any
) -> tuple[int, Any]:
    """What the public JSONPlaceholder answers to a write; it keeps none of them."""
    if method == "DELETE":
        return 200, {}
    if record is None:
        return 500, {"error": "Cannot read properties of undefined (reading 'id')"}
    if not isinstance(body, dict):
        return 400, {"error": "the body must be a JSON object"}
    merged = dict(body) if method == "PUT" else {**record, **body}
    return 200, {**merged, "id": record_id}


def _fault_answer(fault: Fault) -> _Answer:
    if fault.kind == "drop":
        return _Answer(None)
    headers = {"Content-Type": fault.content_type}
    if fault.retry_after is not None:
        headers["Retry-After"] = fault.retry_after
    return _Answer(fault.status, fault.body, headers)


def _parse_body(raw: bytes) -> tuple[Any, str | None]:
    """The JSON body (None when empty) and an error when it is not JSON."""
    if not raw.strip():
        return None, None
    try:
        return json.loads(raw), None
    except ValueError:
        return raw.decode("utf-8", "replace"), "the body is not valid JSON"


def _filtered(records, query: dict[str, list[str]]) -> list[Record]:
    """json-server's equality filters: `?postId=1&postId=2`; parameters starting with _ ignored."""
    filters = {key: set(values) for key, values in query.items() if not key.startswith("_")}
    return [
        record
        for record in records
        if all(str(record.get(key)) in values for key, values in filters.items())
    ]


def _int_or_none(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def _dump(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m sync.fake_target",
        description="Serve generated JSONPlaceholder-like posts and comments until interrupted.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3000)
    parser.add_argument("--posts", type=int, default=100, help="posts to serve (default 100)")
    parser.add_argument("--comments-per-post", type=int, default=COMMENTS_PER_POST)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated data")
    parser.add_argument(
        "--assign-ids", action="store_true", help="give every POST an id of its own choosing"
    )
    parser.add_argument(
        "--stores-nothing",
        action="store_true",
        help="answer writes but keep nothing, like the public JSONPlaceholder site",
    )
    args = parser.parse_args(argv)
    server = FakeTarget(
        host=args.host,
        port=args.port,
        latency=args.latency,
        assign_ids=args.assign_ids,
        stores_nothing=args.stores_nothing,
    )
    server.load_generated(args.posts, comments_per_post=args.comments_per_post, seed=args.seed)
    with server:
        print(
            f"Fake target serving {len(server.posts)} posts and {len(server.comments)} comments "
            f"at {server.url} (Ctrl-C to stop)",
            flush=True,
        )
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
