"""What travels over the wire: JSON bodies in and out, and which methods write."""

from __future__ import annotations

import json
from typing import Any

Record = dict[str, Any]
RESOURCES = ("posts", "comments")
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
JSON_TYPE = "application/json; charset=utf-8"


def parse_body(raw: bytes) -> tuple[Any, str | None]:
    """The JSON body (None when empty) and an error when it is not JSON."""
    if not raw.strip():
        return None, None
    try:
        return json.loads(raw), None
    except ValueError:
        return raw.decode("utf-8", "replace"), "the body is not valid JSON"


def dump(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()
