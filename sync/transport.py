"""How calls reach the target: pooled keep-alive connections, each attempt bounded as a whole.

urllib3's timeouts bound the connect and each read, so a target that sends its answer a byte at
a time could hold an attempt for ever. Here every attempt (a request sent on a connection and its
answer read to the last byte) has a deadline, `timeout` seconds after it starts: a watchdog
thread shuts the connection's socket down when the deadline passes, and the attempt then fails as
one with no answer (`Watch.expired`). One watchdog serves every client of the process.
"""

from __future__ import annotations

import heapq
import itertools
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import urllib3
from requests.utils import (
    DEFAULT_CA_BUNDLE_PATH,
    get_auth_from_url,
    get_environ_proxies,
    prepend_scheme_if_needed,
    select_proxy,
)
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.util import make_headers


class Watch:
    """The attempts of one call: the last one's deadline, and whether the watchdog ended it."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.attempt: Attempt | None = None

    @property
    def expired(self) -> bool:
        """The last attempt ran past its deadline and its connection was shut down."""
        return self.attempt is not None and self.attempt.expired

    def start(self, connection: HTTPConnection) -> Attempt:
        self.attempt = Attempt(connection, time.monotonic() + self.timeout)
        _watchdog.add(self.attempt)
        return self.attempt

    def close(self) -> None:
        if self.attempt is not None:
            self.attempt.done = True


class Attempt:
    """One request on one connection, and its deadline."""

    def __init__(self, connection: HTTPConnection, deadline: float) -> None:
        self.connection = connection
        self.deadline = deadline
        self.socket: socket.socket | None = None
        self.done = False
        self.expired = False

    def expire(self) -> None:
        # The connection may already serve another call (it went back to the pool): only the
        # attempt that still owns it may shut it down.
        if self.done or getattr(self.connection, "attempt", None) is not self:
            return
        sock = self.socket or self.connection.sock
        if sock is None:
            return  # still connecting: urllib3's connect timeout, the same, ends that
        self.expired = True
        # The plain socket's shutdown, also for TLS: ssl's own would drop its state under the
        # thread reading. The reader then sees the connection end.
        with suppress(OSError):
            socket.socket.shutdown(sock, socket.SHUT_RDWR)


class Watchdog:
    """One daemon thread that ends attempts at their deadlines, earliest first."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Attempt]] = []
        self._order = itertools.count()
        self._condition = threading.Condition()
        self._thread: threading.Thread | None = None

    def add(self, attempt: Attempt) -> None:
        with self._condition:
            heapq.heappush(self._heap, (attempt.deadline, next(self._order), attempt))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="call-watchdog")
                self._thread.daemon = True
                self._thread.start()
            elif self._heap[0][2] is attempt:
                self._condition.notify()

    def _run(self) -> None:
        while True:
            with self._condition:
                while not self._heap:
                    self._condition.wait()
                deadline, _, attempt = self._heap[0]
                left = deadline - time.monotonic()
                if left > 0:
                    self._condition.wait(left)
                    continue
                heapq.heappop(self._heap)
            attempt.expire()


_watchdog = Watchdog()
_calls = threading.local()


@contextmanager
def watching(timeout: float) -> Iterator[Watch]:
    """Bound every attempt this thread makes meanwhile to `timeout` seconds, as a whole."""
    watch = Watch(timeout)
    _calls.watch = watch
    try:
        yield watch
    finally:
        _calls.watch = None
        watch.close()


class _Watched:
    """A connection whose every request starts an attempt of the call under way."""

    attempt: Attempt | None = None

    def request(self, *args: Any, **kwargs: Any) -> None:
        watch: Watch | None = getattr(_calls, "watch", None)
        if watch is None:
            super().request(*args, **kwargs)
            return
        attempt = self.attempt = watch.start(self)
        super().request(*args, **kwargs)
        attempt.socket = self.sock


class WatchedHTTPConnection(_Watched, HTTPConnection):
    pass


class WatchedHTTPSConnection(_Watched, HTTPSConnection):
    pass


class WatchedHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = WatchedHTTPConnection


class WatchedHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = WatchedHTTPSConnection


POOL_CLASSES = {"http": WatchedHTTPConnectionPool, "https": WatchedHTTPSConnectionPool}


def connections(base_url: str, *, pool_size: int) -> urllib3.PoolManager:
    """Keep-alive connections to the target, through the proxy the environment names for it
    and trusting REQUESTS_CA_BUNDLE (else requests' CA bundle), as requests would connect."""
    ca_bundle = (
        os.environ.get("REQUESTS_CA_BUNDLE")
        or os.environ.get("CURL_CA_BUNDLE")
        or DEFAULT_CA_BUNDLE_PATH
    )
    trust = {"ca_cert_dir" if os.path.isdir(ca_bundle) else "ca_certs": ca_bundle}
    options = {"num_pools": 1, "maxsize": pool_size, "cert_reqs": "CERT_REQUIRED", **trust}
    proxy = select_proxy(base_url, get_environ_proxies(base_url))
    if not proxy:
        manager = urllib3.PoolManager(**options)
    else:
        proxy = prepend_scheme_if_needed(proxy, "http")
        username, password = get_auth_from_url(proxy)
        auth = make_headers(proxy_basic_auth=f"{username}:{password}") if username else None
        manager = urllib3.ProxyManager(proxy, proxy_headers=auth, **options)
    manager.pool_classes_by_scheme = POOL_CLASSES
    return manager
