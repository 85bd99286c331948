"""The target's shape of posts and comments: kinds, tables, resources, field names, records, ids.

Every other module asks this one what a record on the target looks like, so the camelCase names,
the id mapping and the way two records are compared are written out once.

Remote ids are the target's own values (`sync.ids`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from news.models import Comment, Post
from sync.ids import (
    MAX_REMOTE_ID_LENGTH,
    RemoteId,
    comparable_id,
    readable_id,
    remote_key,
)
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
# Fields that hold the target's ids: compared by their text, as the target compares them.
ID_FIELDS = frozenset({"id", "postId"})
# Fields of free text: a target may rewrite them (trim, lowercase), and they need no filter.
TEXT_FIELDS: dict[Kind, tuple[str, ...]] = {
    Kind.POST: ("title", "body"),
    Kind.COMMENT: ("name", "email", "body"),
}
# A filter of posts no record matches: a cheap read that shows whether the target answers.
MATCHES_NOTHING: Record = {"id": 0, "userId": -1}
_KIND_OF_MODEL = {model: kind for kind, model in MODELS.items()}
__all__ = ["MAX_REMOTE_ID_LENGTH", "RemoteId", "comparable_id", "readable_id", "remote_key"]


# --- Records --------------------------------------------------------------------------------------


def to_record(
    obj: Post | Comment, *, remote_id: RemoteId, post_remote_id: RemoteId | None = None
) -> Record:
    """The record the target should hold for `obj`, under the target's ids."""
    kind = _KIND_OF_MODEL[type(obj)]
    values = [getattr(obj, attribute) for attribute in FIELDS[kind].values()]
    return record_of(kind, values, remote_id=remote_id, post_remote_id=post_remote_id)


def record_of(
    kind: Kind,
    values: Sequence[Any],
    *,
    remote_id: RemoteId,
    post_remote_id: RemoteId | None = None,
) -> Record:
    """The record the target should hold for a row's values (its attributes in FIELDS' order),
    under the target's ids."""
    record = dict(zip(FIELDS[kind], values, strict=True))
    record["id"] = remote_id
    if kind is Kind.COMMENT and post_remote_id is not None:
        record["postId"] = post_remote_id
    return record


# Where a comment's row values (its attributes in FIELDS' order) hold its post's pk.
POST_OF_COMMENT = list(FIELDS[Kind.COMMENT].values()).index("post_id")


def with_post(record: Mapping[str, Any], post_remote_id: RemoteId) -> Record:
    """A comment's record linked to its post by the post's remote id."""
    return {**record, "postId": post_remote_id}


def target_field(kind: Kind, attribute: str) -> str:
    """The target's name of a model attribute of this kind (post_id: postId)."""
    return next(name for name, held_by in FIELDS[kind].items() if held_by == attribute)


def from_record(kind: Kind, record: Mapping[str, Any]) -> dict[str, Any]:
    """A target record as model attribute values (the fields it has)."""
    return {attribute: record[name] for name, attribute in FIELDS[kind].items() if name in record}


def content(record: Mapping[str, Any]) -> Record:
    """A record without its id: what tells one entity's record from another's."""
    return {name: value for name, value in record.items() if name != "id"}


def our_fields(kind: Kind, record: Mapping[str, Any]) -> Record:
    """The fields of `record` that we send, as the target holds them; others left out."""
    return {name: record[name] for name in FIELDS[kind] if name in record}


def acknowledged(kind: Kind, sent: Mapping[str, Any], answer: Mapping[str, Any]) -> Record:
    """What the target says it made of `sent`: each field we sent, as its answer shows it.

    A target that answers with less (`{}`, or only the id) is taken to hold what was sent.
    """
    return {
        name: answer[name] if name in answer and name != "id" else value
        for name, value in our_fields(kind, sent).items()
    }


def record_hash(record: Mapping[str, Any]) -> str:
    """A short, stable fingerprint of a record, to tell whether the target already holds it."""
    comparable = {
        name: comparable_id(value) if name in ID_FIELDS else value for name, value in record.items()
    }
    text = json.dumps(comparable, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def normalised(value: Any) -> Any:
    """A text as targets that rewrite text tend to store it: trimmed, spaces collapsed, one case."""
    return " ".join(value.split()).casefold() if isinstance(value, str) else value


def same_value(name: str, found: Any, wanted: Any, *, loose: bool = False) -> bool:
    """One field equal: ids by their text, and with `loose` texts once normalised."""
    if name in ID_FIELDS:
        return comparable_id(found) == comparable_id(wanted)
    if loose:
        return normalised(found) == normalised(wanted)
    return found == wanted


def holds(
    found: Mapping[str, Any],
    wanted: Mapping[str, Any],
    *,
    rewritten: Collection[str] = (),
    loose: bool = False,
) -> bool:
    """True when `found` carries every field of `wanted` (its id aside) with the same value.

    Fields in `rewritten` (the target is known to rewrite them), or every field with `loose`,
    are compared once normalised (`normalised`).
    """
    return all(
        name in found and same_value(name, found[name], value, loose=loose or name in rewritten)
        for name, value in content(wanted).items()
    )


def rewritten_fields(kind: Kind, sent: Mapping[str, Any], stored: Mapping[str, Any]) -> set[str]:
    """The text fields the target stored otherwise than they were sent."""
    return {
        name
        for name in TEXT_FIELDS[kind]
        if name in sent and name in stored and stored[name] != sent[name]
    }


def parent_remote_key(record: Mapping[str, Any]) -> str | None:
    """A comment record's postId, canonical: the link a target that cascades deletes follows."""
    value = readable_id(record.get("postId"))
    return None if value is None else remote_key(value)
