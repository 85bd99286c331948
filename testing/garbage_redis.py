"""A Redis gone wrong: a server that answers every command with the same reply."""

from __future__ import annotations

import socket
import threading


class GarbageRedis:
    """A server on 127.0.0.1 that speaks Redis's protocol and answers every command it is sent
    with `reply` (raw RESP), whatever the command: a Redis gone wrong, or something else on its
    port. `url` names it."""

    def __init__(self, reply: bytes = b"+OK\r\n") -> None:
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
