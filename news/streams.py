"""At most NEWS_MAX_STREAMS `?all=true` answers streamed at once by one server process.

A stream holds one of the process's threads for as long as its client takes to read it; slow
readers could hold them all, and nothing else would be answered (not even /health/). A stream
over the limit is refused at once (503, Retry-After), so the other threads stay free for
everything else. A slot is given back when the server closes the answer (it always does, read
to the end or not), or when the answer is dropped without being closed.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterator

from django.conf import settings
from django.http import StreamingHttpResponse
from rest_framework.exceptions import APIException


class TooManyStreams(APIException):
    status_code = 503
    default_detail = (
        "Too many ?all=true answers are being streamed at the moment; try again shortly, "
        "or read the list page by page."
    )
    default_code = "too_many_streams"
    wait = 5  # DRF sends it as Retry-After


class _Slots:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.taken = 0

    def take(self) -> Callable[[], None]:
        """A slot, and the call that gives it back (once, however often it is called)."""
        with self._lock:
            if self.taken >= settings.NEWS_MAX_STREAMS:
                raise TooManyStreams
            self.taken += 1
        given_back = threading.Event()

        def give_back() -> None:
            with self._lock:
                if not given_back.is_set():
                    given_back.set()
                    self.taken -= 1

        return give_back


slots = _Slots()


class _Chunks:
    """The stream's chunks, with a close() that gives its slot back."""

    def __init__(self, chunks: Iterator[bytes], give_back: Callable[[], None]) -> None:
        self.chunks, self.give_back = chunks, give_back

    def __iter__(self) -> Iterator[bytes]:
        return self.chunks

    def close(self) -> None:
        try:
            self.chunks.close()
        finally:
            self.give_back()


def limited_stream(chunks: Iterator[bytes], **kwargs) -> StreamingHttpResponse:
    """A StreamingHttpResponse of `chunks`, holding a slot; TooManyStreams when none is free."""
    give_back = slots.take()
    response = StreamingHttpResponse(_Chunks(chunks, give_back), **kwargs)
    weakref.finalize(response, give_back)
    return response
