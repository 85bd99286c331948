"""Redis gone wrong, on 127.0.0.1: a server that answers every command with the same reply, a
proxy in front of a real Redis that sends one of its answers twice, and one that answers slowly
and has forgotten its scripts."""

from __future__ import annotations

import socket
import threading
import time
from typing import Self
from urllib.parse import urlsplit


class _Listening:
    """A server on a free port of 127.0.0.1 whose every connection is served by _serve() in a
    thread of its own; closed by close() or at the end of a `with`."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _serve(self, sock: socket.socket) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.listener.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class GarbageRedis(_Listening):
    """A server that speaks Redis's protocol and answers every command it is sent with `reply`
    (raw RESP), whatever the command: a Redis gone wrong, or something else on its port. `url`
    names it."""

    def __init__(self, reply: bytes = b"+OK\r\n") -> None:
        self.reply = reply
        self.commands = 0
        super().__init__()
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def _serve(self, sock: socket.socket) -> None:
        buffer = b""
        with sock:
            while chunk := sock.recv(65536):
                buffer += chunk
                while (rest := _one_command(buffer)) is not None:
                    buffer = rest
                    self.commands += 1
                    sock.sendall(self.reply)


class _Proxy(_Listening):
    """A proxy in front of the Redis of `url`, which goes wrong once armed (arm()). `url`
    names the proxy, with the same database."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 6379)
        self.armed = threading.Event()
        super().__init__()
        self.url = f"redis://127.0.0.1:{self.port}{parts.path}"

    def arm(self) -> None:
        self.armed.set()


class DoublingRedis(_Proxy):
    """A proxy that passes everything through, but once armed sends the next array answer
    twice (a Redis, or something between, gone wrong)."""

    def __init__(self, url: str) -> None:
        self.doubled = 0
        super().__init__(url)

    def _serve(self, client: socket.socket) -> None:
        upstream = socket.create_connection(self.upstream)
        threading.Thread(target=_pass, args=(client, upstream), daemon=True).start()
        with upstream, client:
            while chunk := _recv(upstream):
                if self.armed.is_set() and chunk.startswith(b"*"):
                    self.armed.clear()
                    self.doubled += 1
                    # Small answers, the first whole at the start of its chunk: doubled whole.
                    chunk = _first_answer(chunk) + chunk
                client.sendall(chunk)


class SlowForgetfulRedis(_Proxy):
    """A proxy that passes a command at a time; once armed, each answer comes `delay` seconds
    late, and an EVALSHA is answered NOSCRIPT: a slow Redis that has just restarted."""

    NOSCRIPT = b"-NOSCRIPT No matching script. Please use EVAL.\r\n"

    def __init__(self, url: str, delay: float) -> None:
        self.delay = delay
        super().__init__(url)

    def _serve(self, client: socket.socket) -> None:
        import hiredis

        buffer = b""
        with client, socket.create_connection(self.upstream) as upstream:
            while chunk := _recv(client):
                buffer += chunk
                while (rest := _one_command(buffer)) is not None:
                    command, buffer = buffer[: len(buffer) - len(rest)], rest
                    if self.armed.is_set() and command.split(b"\r\n")[2].upper() == b"EVALSHA":
                        answer = self.NOSCRIPT
                    else:
                        upstream.sendall(command)
                        answer, reader = b"", hiredis.Reader()
                        while reader.gets() is False:
                            if not (part := _recv(upstream)):
                                return
                            answer += part
                            reader.feed(part)
                    if self.armed.is_set():
                        time.sleep(self.delay)
                    client.sendall(answer)


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


def _first_answer(chunk: bytes) -> bytes:
    """The first answer of a chunk: an array of bulk strings, integers and nils, all here."""
    count, end = _line(chunk, 0)
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
