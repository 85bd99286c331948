"""FakeTarget: the server, its records, its request log, and how one request is answered."""

from __future__ import annotations

import base64
import copy
import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from fake_target.data import COMMENTS_PER_POST, generate_dataset
from fake_target.faults import Answer, Fault, Faults, TokenBucket, fault_answer
from fake_target.routes import JsonServerRoutes
from fake_target.server import Handler, Server
from fake_target.wire import JSON_TYPE, WRITE_METHODS, Record, dump, parse_body


@dataclass
class RecordedRequest:
    """One request as the server received it; `status` is what it answered (None: dropped).

    `received_at` and `answered_at` are Unix times (time.time()): when the request arrived, and
    when its answer was ready (its write applied), None until then.
    """

    method: str
    path: str
    query: dict[str, list[str]]
    body: Any
    status: int | None = None
    received_at: float = field(default_factory=time.time)
    answered_at: float | None = None

    @property
    def is_write(self) -> bool:
        return self.method in WRITE_METHODS


class FakeTarget(Faults, JsonServerRoutes):
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
        string_ids: bool = False,
        answers_without_ids: bool = False,
        rewrite: dict[str, Callable[[Any], Any]] | None = None,
        rate_limit: float = 0.0,
        credentials: tuple[str, str] | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.latency = latency
        self.assign_ids = assign_ids
        self.stores_nothing = stores_nothing
        self.string_ids = string_ids
        self.answers_without_ids = answers_without_ids
        self.rewrite = dict(rewrite or {})
        self.rate_limit = rate_limit
        # (user, password): every request must carry them (Basic authentication), else 401.
        self.credentials = credentials
        self.posts: dict[Any, Record] = {}
        self.comments: dict[Any, Record] = {}
        self.requests: list[RecordedRequest] = []
        self.faults: list[Fault] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.connections_opened = 0
        self._random = random.Random(seed)
        self._lock = threading.RLock()
        self._httpd: Server | None = None
        self._thread: threading.Thread | None = None
        self.load(posts=posts or [], comments=comments or [])

    # --- Lifecycle ------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("the fake target is not running: call start() first")
        return f"http://{self.host}:{self.port}"

    def start(self) -> FakeTarget:
        self._httpd = Server((self.host, self.port), Handler, target=self)
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
        """Replace both collections with copies of these records; with `string_ids`, numeric
        ids become strings, as json-server 1.0 reads its file (a postId stays as it is)."""
        with self._lock:
            self.posts = dict(self._keyed(record) for record in posts)
            self.comments = dict(self._keyed(record) for record in comments)

    def _keyed(self, record: Record) -> tuple[Any, Record]:
        record = dict(record)
        if self.string_ids and isinstance(record.get("id"), int):
            record["id"] = str(record["id"])
        return record["id"], record

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

    # --- Serving --------------------------------------------------------------------------------

    @property
    def rate_limit(self) -> float:
        """Requests a second the target serves (0: no limit); beyond it, 429 with Retry-After."""
        return self._bucket.rate if self._bucket else 0.0

    @rate_limit.setter
    def rate_limit(self, rate: float) -> None:
        self._bucket = TokenBucket(rate) if rate > 0 else None

    def _authorized(self, authorization: str | None) -> bool:
        """Whether a request with this Authorization header may be served."""
        if self.credentials is None:
            return True
        expected = base64.b64encode(":".join(self.credentials).encode()).decode()
        return authorization == f"Basic {expected}"

    def _serve_later(self, seconds: float, method: str, path: str, query, body) -> None:
        def serve() -> None:
            with self._lock:
                self._route(method, path, query, body)

        later = threading.Timer(seconds, serve)
        later.daemon = True
        later.start()

    def _handle(
        self, method: str, raw_path: str, raw_body: bytes, authorization: str | None = None
    ) -> Answer:
        parts = urlsplit(raw_path)
        path = "/" + parts.path.strip("/")
        query = parse_qs(parts.query)
        body, body_error = parse_body(raw_body)
        request = RecordedRequest(method=method, path=path, query=query, body=body)
        if not self._authorized(authorization):
            request.status, request.answered_at = 401, time.time()
            with self._lock:
                self.requests.append(request)
            headers = {"Content-Type": JSON_TYPE, "WWW-Authenticate": 'Basic realm="target"'}
            return Answer(401, dump({"error": "Unauthorized"}), headers)
        with self._lock:
            self.requests.append(request)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            fault = self._take_fault(method, path)
        wait = self._bucket.take() if self._bucket else 0.0
        if wait and fault is None:
            fault = Fault(kind="answer", status=429, body=b'{"error":"Too Many Requests"}')
            fault.retry_after = str(max(1, math.ceil(wait)))
        stall_after = fault is not None and fault.kind == "stall" and fault.after_processing
        drip = fault is not None and fault.kind == "drip"
        serves = fault is None or fault.kind in {"stall", "drip"} or fault.after_processing
        try:
            delay = self.latency + (fault.seconds if fault and not (stall_after or drip) else 0.0)
            if delay > 0:
                time.sleep(delay)
            if not serves:
                answer = fault_answer(fault)
                if fault.applied_after is not None and body_error is None:
                    self._serve_later(fault.applied_after, method, path, query, body)
            else:
                if body_error is not None:
                    status, payload = 400, {"error": body_error}
                else:
                    with self._lock:
                        status, payload = self._route(method, path, query, body)
                answer = Answer(status, dump(payload), {"Content-Type": JSON_TYPE})
                if drip:
                    answer.drip = (fault.chunk, fault.seconds)
                elif fault is not None and fault.kind != "stall":
                    answer = fault_answer(fault)
            request.status = answer.status
            request.answered_at = time.time()
            if stall_after:
                time.sleep(fault.seconds)
            return answer
        finally:
            with self._lock:
                self.in_flight -= 1
