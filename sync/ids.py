"""Remote ids: the target's own values, and how records are told apart by them.

A remote id is kept as the target gave it: a JSON integer (json-server 0.17) or a string
(json-server 1.0 gives `"Q2rmeYny5Gc"`, many APIs give UUIDs). Two ids are the same record when
their text is the same (`remote_key`): json-server 0.17 treats `"5"` and `5` alike.

Pure code: no Django, no HTTP.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

RemoteId = int | str
# A record of any mapping type: unique_by_id gives back the type it is given.
R = TypeVar("R", bound=Mapping[str, Any])

MAX_REMOTE_ID_LENGTH = 255
_INTEGER = re.compile(r"-?(0|[1-9][0-9]{0,18})")
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f]")


def readable_id(value: object) -> RemoteId | None:
    """`value` as a remote id the engine can keep and address, or None.

    A JSON integer, or a non-empty string of at most 255 printable characters; not a boolean, a
    float, null, an object or a list.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip() and len(value) <= MAX_REMOTE_ID_LENGTH:
        return None if _UNPRINTABLE.search(value) else value
    return None


def remote_key(value: RemoteId) -> str:
    """The canonical form of a remote id, by which records are told apart: its text."""
    return str(value)


def comparable_id(value: Any) -> Any:
    """An id value as comparisons and hashes see it: `"5"` and `5` are one, other text stays."""
    if isinstance(value, str) and _INTEGER.fullmatch(value):
        return int(value)
    return value


def key_of(record: Mapping[str, Any]) -> str | None:
    """The record's id as records are told apart, or None when it has no usable id."""
    value = readable_id(record.get("id"))
    return None if value is None else remote_key(value)


def unique_by_id(records: Iterable[R]) -> tuple[R, ...]:
    """Records in the order first seen, each id once ("5" and 5 are one id); records without a
    usable id are left out (nothing could address them)."""
    seen: dict[str, R] = {}
    for record in records:
        ident = key_of(record)
        if ident is not None:
            seen.setdefault(ident, record)
    return tuple(seen.values())
