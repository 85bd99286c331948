"""Request bodies read by the event loop before a thread is taken (news_project/asgi.py).

- A client that sends its body slowly holds no thread, no transaction and no row lock: Django
  runs once the body is all here. A body that is not all here within NEWS_BODY_TIMEOUT seconds
  is answered 408, and the connection closed.
- A chunked body (Transfer-Encoding: chunked, no Content-Length) is read like any other; Django is
  given its length.
- A body over DATA_UPLOAD_MAX_MEMORY_SIZE is not kept: Django answers 413, as it does for a
  Content-Length over the limit (news_project.views.bad_request). It is read to its end and
  dropped, up to DRAIN_FACTOR times the limit, so that the client's next request on the same
  connection is answered; a longer one is not read, and the answer closes the connection
  (`Connection: close`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

# A refused body is read and dropped up to this many times DATA_UPLOAD_MAX_MEMORY_SIZE.
DRAIN_FACTOR = 4


@dataclass(frozen=True)
class Body:
    """A request's body as Django is given it."""

    data: bytes = b""
    # The length Django is told (CONTENT_LENGTH): over the limit for a refused body.
    length: int = 0
    # Read to its end: the connection can carry the client's next request.
    read_whole: bool = True
    # Not all here within NEWS_BODY_TIMEOUT (answered 408), or the client went away.
    late: bool = False
    gone: bool = False


async def read_body(
    headers: list[tuple[bytes, bytes]],
    receive: Callable[[], Awaitable[dict]],
    *,
    limit: int,
    seconds: float,
) -> Body:
    """The body of a request with these (ASGI) headers, read from `receive`."""
    declared, chunked = _framing(headers)
    if declared is None and not chunked:
        return Body()  # HTTP/1.1: no Content-Length and not chunked means no body
    if declared == 0:
        return Body()
    drain = DRAIN_FACTOR * limit
    if declared is not None and declared > drain:
        return Body(length=declared, read_whole=False)  # refused unread: 413, then close
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    parts: list[bytes] = []
    size = 0
    while True:
        try:
            async with asyncio.timeout_at(deadline):
                message = await receive()
        except TimeoutError:
            return Body(read_whole=False, late=True)
        if message["type"] == "http.disconnect":
            return Body(read_whole=False, gone=True)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size <= limit:
            parts.append(chunk)
        elif size > drain:
            return Body(length=size, read_whole=False)
        if not message.get("more_body", False):
            break
    if size > limit:
        return Body(length=size)
    return Body(data=b"".join(parts), length=size)


def _framing(headers: list[tuple[bytes, bytes]]) -> tuple[int | None, bool]:
    """(the Content-Length, or None; whether the body is chunked)."""
    declared, chunked = None, False
    for name, value in headers:
        if name == b"content-length" and value.strip().isdigit():
            declared = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    return declared, chunked
