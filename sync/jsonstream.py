"""A JSON list read as it arrives: its items one by one, the whole never held.

It accepts and rejects what `json.loads` does, with the same values (the same decoder reads each
item), so a list read in pieces and one read whole tell the same story.

Pure code: bytes in, items out. No Django, no HTTP.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterator
from typing import Any

_SPACE = re.compile(r"[ \t\n\r]*")
# An item is decoded once this much more text has arrived (or the body ended), so an item cut
# by a piece's end is decoded again only after its text has doubled, never piece by piece.
_MORE = 1 << 16
# A number cut by a piece's end may go on (`2` of `2e-5`): one is taken once this many characters
# follow it, enough to show a fraction or an exponent.
_NUMBER_LOOKAHEAD = 3
# Bytes of the start of the body kept to quote it in an error.
HEAD_BYTES = 2048


class NotJson(ValueError):
    """The body is not JSON at all."""


class JsonListReader:
    """Feed it the body piece by piece (`feed`, then `close`); each yields the items read.

    `is_list` is False once the body is known to be JSON but not a list; items are yielded as
    they are, objects or not. A body that is not JSON raises NotJson, at the latest from `close`.
    """

    def __init__(self) -> None:
        self.head = b""
        self.is_list = True
        self._raw = b""  # before the encoding is known
        self._decoder: Any = None
        self._scan = json.JSONDecoder().raw_decode
        self._text = ""
        self._pos = 0
        self._state = "start"  # start, first, item, next, end, whole
        self._ready_at = 0

    def feed(self, data: bytes) -> Iterator[Any]:
        if len(self.head) < HEAD_BYTES:
            self.head += data[: HEAD_BYTES - len(self.head)]
        if self._decoder is None:
            self._raw += data
            if len(self._raw) < 4:
                return
            data, self._raw = self._raw, b""
            self._start_decoding(data)
        self._text += self._decode(data, final=False)
        if len(self._text) >= self._ready_at:
            yield from self._items(final=False)

    def close(self) -> Iterator[Any]:
        if self._decoder is None:
            self._start_decoding(self._raw)
            self._text += self._decode(self._raw, final=True)
        else:
            self._text += self._decode(b"", final=True)
        yield from self._items(final=True)
        if self._state == "whole":
            try:
                json.loads(self._text)
            except ValueError:
                raise NotJson("not JSON") from None
            self.is_list = False
        elif self._state != "end":
            raise NotJson("not JSON")

    def _start_decoding(self, data: bytes) -> None:
        self._decoder = codecs.getincrementaldecoder(json.detect_encoding(data))("surrogatepass")

    def _decode(self, data: bytes, *, final: bool) -> str:
        try:
            return self._decoder.decode(data, final)
        except UnicodeDecodeError:
            raise NotJson("not JSON") from None

    def _items(self, *, final: bool) -> Iterator[Any]:
        text, pos = self._text, self._pos
        self._ready_at = 0
        while True:
            pos = _SPACE.match(text, pos).end()
            if self._state == "whole":
                pos = len(text)  # not a list: read whole, then judged as json.loads judges it
                break
            if pos == len(text):
                break
            if self._state == "start":
                if text[pos] != "[":
                    self._state = "whole"
                    continue
                self._state, pos = "first", pos + 1
            elif self._state == "end":
                raise NotJson("not JSON")  # more after the list
            elif self._state in ("first", "next") and text[pos] == "]":
                if self._state == "next":
                    raise NotJson("not JSON")  # a comma before the end
                self._state, pos = "end", pos + 1
            elif self._state in ("first", "next"):
                try:
                    item, end = self._scan(text, pos)
                except json.JSONDecodeError:
                    if final:
                        raise NotJson("not JSON") from None
                    self._ready_at = len(text) + max(_MORE, len(text) - pos)
                    break
                if not final and _may_go_on(item, end, len(text)):
                    self._ready_at = end + _NUMBER_LOOKAHEAD
                    break
                self._state, pos = "item", end
                yield item
            elif text[pos] == ",":
                self._state, pos = "next", pos + 1
            elif text[pos] == "]":
                self._state, pos = "end", pos + 1
            else:
                raise NotJson("not JSON")
        if self._state == "whole":
            self._pos = pos
            return
        self._text, self._pos = text[pos:], 0
        self._ready_at = max(0, self._ready_at - pos)


def _may_go_on(item: Any, end: int, length: int) -> bool:
    """A number read too close to the text's end: more text may make it another number."""
    number = isinstance(item, int | float) and not isinstance(item, bool)
    return number and length - end < _NUMBER_LOOKAHEAD
