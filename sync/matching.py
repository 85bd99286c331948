"""Which record on the target is an entity's own, when the answer to its create was lost.

Pure code: the records found by content in, one record (or none) per entity out. Records are
told apart by the text of their ids (`sync.target.remote_key`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sync.ids import comparable_id, readable_id, remote_key
from sync.planner import EntityKey, Kind

Record = Mapping[str, Any]
Claimed = set[tuple[Kind, str]]


@dataclass(frozen=True)
class Lookup:
    """An entity whose create may have landed: the id its POST carried, the records found."""

    key: EntityKey
    own_id: int
    candidates: tuple[Record, ...]


def key_of(record: Record) -> str | None:
    """The record's id as records are told apart, or None when it has no usable id."""
    value = readable_id(record.get("id"))
    return None if value is None else remote_key(value)


def pick_records(lookups: Sequence[Lookup], claimed: Iterable[tuple[Kind, str]]) -> dict:
    """Give each entity at most one of its candidates, never one that another entity holds.

    `claimed` are the records other entities are known to hold. Entities whose own id is among
    their candidates take that record first (a target that keeps the ids it is sent); the others
    then take the newest record still free, in entity order: on a target that picks its own
    ids, records it held before ours came earlier (lower ids, or earlier in its list). Records
    with the same content are interchangeable, so this never leaves a duplicate behind when each
    has its copy.
    """
    taken: Claimed = set(claimed)
    picked: dict[EntityKey, Record | None] = {lookup.key: None for lookup in lookups}
    for lookup in lookups:
        for record in lookup.candidates:
            ident = (lookup.key.kind, key_of(record))
            if ident[1] == remote_key(lookup.own_id) and ident not in taken:
                picked[lookup.key] = record
                taken.add(ident)
                break
    for lookup in sorted(lookups, key=lambda lookup: lookup.key):
        if picked[lookup.key] is not None:
            continue
        free = [
            record
            for record in lookup.candidates
            if key_of(record) is not None and (lookup.key.kind, key_of(record)) not in taken
        ]
        if free:
            record = newest(free)
            picked[lookup.key] = record
            taken.add((lookup.key.kind, key_of(record)))
    return picked


def newest(records: Sequence[Record]) -> Record:
    """The record the target made last: the highest id when every id is a number, else the last
    one the target listed."""
    ids = [comparable_id(record.get("id")) for record in records]
    if all(isinstance(ident, int) and not isinstance(ident, bool) for ident in ids):
        return records[ids.index(max(ids))]
    return records[-1]


def unique_by_id(records: Iterable[Record]) -> tuple[Record, ...]:
    """Records in the order first seen, each id once ("5" and 5 are one id); records without a
    usable id are left out (nothing could address them)."""
    seen: dict[str, Record] = {}
    for record in records:
        ident = key_of(record)
        if ident is not None:
            seen.setdefault(ident, record)
    return tuple(seen.values())


def taken_by(picks: Mapping[EntityKey, Record | None]) -> Claimed:
    """The records these picks gave to their entities."""
    return {
        (key.kind, ident)
        for key, record in picks.items()
        if record is not None and (ident := key_of(record)) is not None
    }
