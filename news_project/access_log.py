"""The access log of `manage.py serve`: a line per answer on standard output.

    [2026-12-05 03:16:20 +0000] 127.0.0.1 - "GET /news/comments/?page=2 HTTP/1.1" 200 1.234

The time the request came (local time), the client's address, the request line as it was sent
(path and query string, percent-encoded as they came; a byte beyond ASCII shown as `\\xc3`), the
status and the milliseconds the answer took. This is granian's own default format, with the
query string added.

The line is written on the worker's event loop as the answer ends. Lines of answers that end
together are written in one go once the loop has run what was ready: under load a write per
batch, at rest a write per line, right away. Every worker writes to the same standard output, a
pipe under docker: a write of at most PIPE_BUF bytes to a pipe is never split by another's, so a
batch goes out in writes of whole lines of at most that many bytes (a longer line alone).
granian's own access log builds a logging record per request and costs a sixth of a cached read
(docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import TextIO

# The most a write to a pipe may hold and still never be split by another's (POSIX: 512 at
# least; Linux: 4096).
PIPE_BUF = 4096
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
        target = scope["raw_path"]
        if query := scope["query_string"]:
            target = b"%s?%s" % (target, query)
        version = scope["http_version"]
        client = scope.get("client")
        line = (
            f"[{self.stamp}] {client[0] if client else '-'} - "
            f'"{scope["method"]} {target.decode("ascii", "backslashreplace")} '
            f'HTTP/{"1.0" if version == "1" else version}" {status} {took:.3f}\n'
        )
        if not self.lines:
            asyncio.get_running_loop().call_soon(self.write)
        self.lines.append(line)

    def write(self) -> None:
        lines, self.lines = self.lines, []
        stream = self.stream or sys.stdout
        try:
            for chunk in _chunks(lines):
                stream.write(chunk)
                stream.flush()
        except (OSError, ValueError):  # standard output closed or gone: nothing to tell
            pass


def _chunks(lines: list[str]) -> list[str]:
    """The lines joined in chunks of at most PIPE_BUF bytes each (the lines are ASCII), a longer
    line alone."""
    chunks: list[str] = []
    chunk: list[str] = []
    size = 0
    for line in lines:
        if chunk and size + len(line) > PIPE_BUF:
            chunks.append("".join(chunk))
            chunk, size = [], 0
        chunk.append(line)
        size += len(line)
    if chunk:
        chunks.append("".join(chunk))
    return chunks
