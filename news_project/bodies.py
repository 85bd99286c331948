"""Request bodies read in full before Django sees the request (news_project/wsgi.py).

- A client that sends its body slowly holds a thread while it does, but never a transaction or a
  row lock: a write's transaction begins, and its row is locked, once the body is all here.
- A chunked body (Transfer-Encoding: chunked, no Content-Length) is read like any other. Django
  reads CONTENT_LENGTH bytes, so it would take such a body for an empty one: a PATCH would answer
  200 and change nothing.

A body over DATA_UPLOAD_MAX_MEMORY_SIZE is not read beyond the limit: Django then answers 413, as
it does for a Content-Length over the limit (news_project.views.bad_request).
"""

from __future__ import annotations

import io

from django.conf import settings

READ_SIZE = 65536


class WholeBodies:
    """WSGI middleware: the body in memory, with its length, before the application runs."""

    def __init__(self, application) -> None:
        self.application = application

    def __call__(self, environ, start_response):
        declared = environ.get("CONTENT_LENGTH") or ""
        chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if declared.isdigit() and int(declared) > 0:
            length = int(declared)
            if limit is not None and length > limit:
                return self.application(environ, start_response)  # refused unread: 413
            body = _read(environ["wsgi.input"], length)
        elif chunked and not declared and environ.get("wsgi.input_terminated"):
            # The server ends the stream where the body ends; one byte past the limit says 413.
            body = _read(environ["wsgi.input"], None if limit is None else limit + 1)
        else:
            return self.application(environ, start_response)
        # A body cut short (the client went away) keeps its declared length: Django reads what
        # there is, and the parser refuses it.
        environ = {
            **environ,
            "wsgi.input": io.BytesIO(body),
            "CONTENT_LENGTH": declared if declared.isdigit() else str(len(body)),
        }
        return self.application(environ, start_response)


def _read(stream, most: int | None) -> bytes:
    """Up to `most` bytes of `stream` (all of it with None), to its end."""
    parts, left = [], most
    while left is None or left > 0:
        part = stream.read(READ_SIZE if left is None else min(READ_SIZE, left))
        if not part:
            break
        parts.append(part)
        if left is not None:
            left -= len(part)
    return b"".join(parts)
