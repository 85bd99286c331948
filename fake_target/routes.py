"""json-server's routes for /posts and /comments, over the records held in memory.

GET    /posts               every post, in insertion order; `?userId=1` filters by equality
POST   /posts               201 and the stored record
GET    /posts/{id}          200, or 404 `{}`
PUT    /posts/{id}          replaces the record (the id stays), 200; 404 `{}` when unknown
PATCH  /posts/{id}          merges into the record, 200; 404 `{}` when unknown
DELETE /posts/{id}          200 `{}` and deletes the post's comments too; 404 `{}` when unknown
GET    /posts/{id}/comments the post's comments (an empty list for an unknown post)
POST   /posts/{id}/comments creates a comment with that postId
...and the same for /comments (without the nested route and the cascade).

With `string_ids` it behaves as json-server 1.0 does instead: every id is a string (loaded
numbers become "1", "2", ...), a POST gets a random one such as "Q2rmeYny5Gc" whatever it sends,
a filter's text is read as a number, boolean or null where it can be and compared strictly, and
deleting a post sets its comments' postId to null rather than deleting them.
"""

from __future__ import annotations

import base64
import random
from collections.abc import Callable
from typing import Any

from fake_target.wire import RESOURCES, WRITE_METHODS, Record

NOT_FOUND = (404, {})


class JsonServerRoutes:
    """The serving half of FakeTarget: a request in, a status and a JSON payload out."""

    posts: dict[Any, Record]
    comments: dict[Any, Record]
    assign_ids: bool
    stores_nothing: bool
    string_ids: bool
    answers_without_ids: bool
    rewrite: dict[str, Callable[[Any], Any]]
    _random: random.Random

    def _route(
        self, method: str, path: str, query: dict[str, list[str]], body: Any
    ) -> tuple[int, Any]:
        segments = path.strip("/").split("/")
        name = segments[0]
        if name not in RESOURCES or len(segments) > 3:
            return NOT_FOUND
        records = self.posts if name == "posts" else self.comments
        filtered = _strictly_filtered if self.string_ids else _filtered
        if len(segments) == 1:
            if method == "GET":
                return 200, filtered(records.values(), query)
            if method == "POST":
                return self._answered(self._create(records, body))
            return NOT_FOUND
        record_id = segments[1] if self.string_ids else _int_or_none(segments[1])
        if record_id is None:
            return NOT_FOUND
        if len(segments) == 3:
            if name != "posts" or segments[2] != "comments":
                return NOT_FOUND
            if method == "GET":
                comments = (c for c in self.comments.values() if c.get("postId") == record_id)
                return 200, filtered(comments, query)
            if method == "POST":
                if not isinstance(body, dict):
                    return 400, {"error": "the body must be a JSON object"}
                return self._answered(self._create(self.comments, {**body, "postId": record_id}))
            return NOT_FOUND
        record = records.get(record_id)
        if self.stores_nothing and method in WRITE_METHODS:
            return _answer_without_storing(method, record_id, record, body)
        if record is None:
            return NOT_FOUND
        if method == "GET":
            return 200, record
        if method in {"PUT", "PATCH"}:
            if not isinstance(body, dict):
                return 400, {"error": "the body must be a JSON object"}
            replaced = self._rewritten(dict(body) if method == "PUT" else {**record, **body})
            replaced["id"] = record_id
            records[record_id] = replaced
            return 200, replaced
        if method == "DELETE":
            del records[record_id]
            if name == "posts":
                orphans = [cid for cid, c in self.comments.items() if c.get("postId") == record_id]
                for comment_id in orphans:
                    if self.string_ids:  # json-server 1.0 keeps them, without a post
                        self.comments[comment_id]["postId"] = None
                    else:
                        del self.comments[comment_id]
            return 200, {}
        return NOT_FOUND

    def _create(self, records: dict[Any, Record], body: Any) -> tuple[int, Any]:
        if not isinstance(body, dict):
            return 400, {"error": "the body must be a JSON object"}
        record = self._rewritten(dict(body))
        if self.stores_nothing:
            return 201, {**record, "id": len(records) + 1}
        if self.string_ids:
            record["id"] = self._random_id()
        elif self.assign_ids or record.get("id") is None:
            record["id"] = max(records, default=0) + 1
        elif isinstance(record["id"], bool) or not isinstance(record["id"], int):
            return 400, {"error": "id must be an integer"}
        elif record["id"] in records:
            return 500, {"error": "Insert failed, duplicate id"}
        records[record["id"]] = record
        return 201, record

    def _answered(self, answer: tuple[int, Any]) -> tuple[int, Any]:
        """A create's answer; with `answers_without_ids`, the record without its id."""
        status, payload = answer
        if self.answers_without_ids and status == 201 and isinstance(payload, dict):
            return status, {k: v for k, v in payload.items() if k != "id"}
        return answer

    def _rewritten(self, record: Record) -> Record:
        """The record as stored: each field of `rewrite` passed through its function."""
        for name, rewrite in self.rewrite.items():
            if isinstance(record.get(name), str):
                record[name] = rewrite(record[name])
        return record

    def _random_id(self) -> str:
        """An id as json-server 1.0 makes them: 8 random bytes, base64url."""
        return base64.urlsafe_b64encode(self._random.randbytes(8)).decode().rstrip("=")


def _answer_without_storing(
    method: str, record_id: int, record: Record | None, body: Any
) -> tuple[int, Any]:
    """What the public JSONPlaceholder answers to a write; it keeps none of them."""
    if method == "DELETE":
        return 200, {}
    if record is None:
        return 500, {"error": "Cannot read properties of undefined (reading 'id')"}
    if not isinstance(body, dict):
        return 400, {"error": "the body must be a JSON object"}
    merged = dict(body) if method == "PUT" else {**record, **body}
    return 200, {**merged, "id": record_id}


def _filtered(records, query: dict[str, list[str]]) -> list[Record]:
    """json-server's equality filters: `?postId=1&postId=2`; parameters starting with _ ignored."""
    filters = {key: set(values) for key, values in query.items() if not key.startswith("_")}
    return [
        record
        for record in records
        if all(str(record.get(key)) in values for key, values in filters.items())
    ]


def _strictly_filtered(records, query: dict[str, list[str]]) -> list[Record]:
    """json-server 1.0's filters: each text read as a number, boolean or null where JavaScript
    can, then compared with ===; `_`-parameters ignored."""
    filters = {
        key: [_coerced(value) for value in values]
        for key, values in query.items()
        if not key.startswith("_")
    }
    return [
        record
        for record in records
        if all(
            any(_strictly_equal(record.get(key), value) for value in values)
            for key, values in filters.items()
        )
    ]


def _coerced(text: str) -> Any:
    if text in ("true", "false"):
        return text == "true"
    if text == "null":
        return None
    if not text.strip():
        return text
    try:
        number = float(text)
    except ValueError:
        return text
    if number != number or number in (float("inf"), float("-inf")):
        return text
    return int(number) if number.is_integer() else number


def _strictly_equal(field: Any, value: Any) -> bool:
    """JavaScript's ===: a number never equals a string, true never equals 1."""
    if isinstance(field, bool) or isinstance(value, bool):
        return isinstance(field, bool) and isinstance(value, bool) and field == value
    if isinstance(field, int | float) and isinstance(value, int | float):
        return field == value
    return type(field) is type(value) and field == value


def _int_or_none(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None
