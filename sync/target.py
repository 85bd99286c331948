"""The target's shape of posts and comments: kinds, tables, resources, field names, records.

Every other module asks this one what a record on the target looks like, so the camelCase names
and the id mapping are written out once.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from news.models import Comment, Post
from sync.planner import Kind

Record = dict[str, Any]

MODELS: dict[Kind, type[Post] | type[Comment]] = {Kind.POST: Post, Kind.COMMENT: Comment}
TABLES: dict[Kind, str] = {kind: model._meta.db_table for kind, model in MODELS.items()}
KINDS: dict[str, Kind] = {table: kind for kind, table in TABLES.items()}

# Each field of a record on the target -> the model attribute that holds it.
FIELDS: dict[Kind, dict[str, str]] = {
    Kind.POST: {"id": "id", "userId": "user_id", "title": "title", "body": "body"},
    Kind.COMMENT: {
        "id": "id",
        "postId": "post_id",
        "name": "name",
        "email": "email",
        "body": "body",
    },
}
_KIND_OF_MODEL = {model: kind for kind, model in MODELS.items()}


def to_record(obj: Post | Comment, *, remote_id: int, post_remote_id: int | None = None) -> Record:
    """The record the target should hold for `obj`, under the target's ids."""
    kind = _KIND_OF_MODEL[type(obj)]
    record = {name: getattr(obj, attribute) for name, attribute in FIELDS[kind].items()}
    record["id"] = remote_id
    if kind is Kind.COMMENT and post_remote_id is not None:
        record["postId"] = post_remote_id
    return record


def from_record(kind: Kind, record: Mapping[str, Any]) -> dict[str, Any]:
    """A target record as model attribute values (the fields it has)."""
    return {attribute: record[name] for name, attribute in FIELDS[kind].items() if name in record}


def content(record: Mapping[str, Any]) -> Record:
    """A record without its id: what tells one entity's record from another's."""
    return {name: value for name, value in record.items() if name != "id"}


def record_hash(record: Mapping[str, Any]) -> str:
    """A short, stable fingerprint of a record, to tell whether the target already holds it."""
    text = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def holds(found: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    """True when `found` carries every field of `wanted` (its id aside) with the same value."""
    return all(name in found and found[name] == value for name, value in content(wanted).items())


def parent_remote_id(record: Mapping[str, Any]) -> int | None:
    """A comment record's postId, the link a target that cascades deletes follows."""
    value = record.get("postId")
    return value if isinstance(value, int) and not isinstance(value, bool) else None
