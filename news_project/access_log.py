"""The access log of `manage.py serve`: a line per answer on standard output.

    [2026-12-05 03:16:20 +0000] 127.0.0.1 - "GET /news/comments/?page=2 HTTP/1.1" 200 1.234

The time the request came (local time), the client's address, the request line as it was sent
(path and query string, percent-encoded as they came), the status and the milliseconds the
answer took. This is granian's own default format, with the query string added.

The line is written on the worker's event loop as the answer ends. Lines of answers that end
together are written to the stream in one go, once the loop has run what was ready: under load a
write per batch, at rest a write per line, right away. granian's own access log builds a logging
record per request and costs a sixth of a cached read (docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import TextIO

TIME_FORMAT = "%Y-%m-%d %H:%M:%S %z"


class AccessLog:
    """One worker's access log: `answered()` on its event loop, once per answer."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream
        self.lines: list[str] = []
        self.second, self.stamp = -1, ""

    def answered(self, scope: dict, status: int, came: float, started: float) -> None:
        """Log the answer to `scope`'s request: it came at `came` (time.time()), its answer
        was started at `started` (time.perf_counter())."""
        took = (time.perf_counter() - started) * 1000
        if (second := int(came)) != self.second:
            self.second = second
            self.stamp = time.strftime(TIME_FORMAT, time.localtime(second))
        target = scope["raw_path"].decode("latin-1")
        if query := scope["query_string"]:
            target = f"{target}?{query.decode('latin-1')}"
        client = scope.get("client")
        line = (
            f"[{self.stamp}] {client[0] if client else '-'} - "
            f'"{scope["method"]} {target} HTTP/{scope["http_version"]}" {status} {took:.3f}\n'
        )
        if not self.lines:
            asyncio.get_running_loop().call_soon(self.write)
        self.lines.append(line)

    def write(self) -> None:
        lines, self.lines = self.lines, []
        stream = self.stream or sys.stdout
        try:
            stream.write("".join(lines))
            stream.flush()
        except (OSError, ValueError):  # standard output closed or gone: nothing to tell
            pass
