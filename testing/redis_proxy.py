"""A Redis gone wrong in front of a real one: a proxy that sends one of its answers twice."""

from __future__ import annotations

import socket
import threading
from urllib.parse import urlsplit


class DoublingRedis:
    """A proxy on 127.0.0.1 in front of the Redis of `url` that passes everything through, but
    once armed (arm()) sends the next array answer twice (a Redis, or something between, gone
    wrong). `url` names the proxy, with the same database."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 6379)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"redis://127.0.0.1:{self.listener.getsockname()[1]}{parts.path}"
        self.doubled = 0
        self.armed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def arm(self) -> None:
        self.armed.set()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.upstream)
            threading.Thread(target=_pass, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._answers, args=(upstream, client), daemon=True).start()

    def _answers(self, upstream: socket.socket, client: socket.socket) -> None:
        with upstream, client:
            while chunk := _recv(upstream):
                if self.armed.is_set() and chunk.startswith(b"*"):
                    self.armed.clear()
                    self.doubled += 1
                    # Small answers, the first whole at the start of its chunk: doubled whole.
                    chunk = _first_answer(chunk) + chunk
                client.sendall(chunk)

    def close(self) -> None:
        self.listener.close()

    def __enter__(self) -> DoublingRedis:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def _first_answer(chunk: bytes) -> bytes:
    """The first answer of a chunk: an array of bulk strings, integers and nils, all here."""
    end, (count, end) = 0, _line(chunk, 0)
    for _ in range(int(count[1:])):
        item, end = _line(chunk, end)
        if item[:1] == b"$" and int(item[1:]) >= 0:
            end += int(item[1:]) + 2
    return chunk[:end]


def _line(chunk: bytes, start: int) -> tuple[bytes, int]:
    end = chunk.index(b"\r\n", start)
    return chunk[start:end], end + 2


def _pass(source: socket.socket, sink: socket.socket) -> None:
    with source:
        while chunk := _recv(source):
            sink.sendall(chunk)
    sink.close()


def _recv(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except OSError:
        return b""
