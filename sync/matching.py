"""Which record on the target is an entity's own, when the answer to its create was lost.

Pure code: the records found by content in, one record (or none) per entity out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sync.planner import EntityKey, Kind

Record = Mapping[str, Any]


@dataclass(frozen=True)
class Lookup:
    """An entity whose create may have landed: the id its POST carried, the records found."""

    key: EntityKey
    own_id: int
    candidates: tuple[Record, ...]


def pick_records(
    lookups: Sequence[Lookup], claimed: Iterable[tuple[Kind, int]]
) -> dict[EntityKey, Record | None]:
    """Give each entity at most one of its candidates, never one that another entity holds.

    `claimed` are the records other entities are known to hold. Entities whose own id is among
    their candidates take that record first (a target that keeps the ids it is sent); the others
    then take the newest (highest) id still free, in entity order: on a target that picks its
    own ids, records it held before ours have lower ids. Records with the same content are
    interchangeable, so this never leaves a duplicate behind when each has its copy.
    """
    taken = set(claimed)
    picked: dict[EntityKey, Record | None] = {lookup.key: None for lookup in lookups}
    for lookup in lookups:
        for record in lookup.candidates:
            ident = (lookup.key.kind, record.get("id"))
            if record.get("id") == lookup.own_id and ident not in taken:
                picked[lookup.key] = record
                taken.add(ident)
                break
    for lookup in sorted(lookups, key=lambda lookup: lookup.key):
        if picked[lookup.key] is not None:
            continue
        free = [
            record
            for record in lookup.candidates
            if isinstance(record.get("id"), int) and (lookup.key.kind, record["id"]) not in taken
        ]
        if free:
            record = max(free, key=lambda record: record["id"])
            picked[lookup.key] = record
            taken.add((lookup.key.kind, record["id"]))
    return picked


def unique_by_id(records: Iterable[Record]) -> tuple[Record, ...]:
    """Records in the order first seen, each id once."""
    seen: dict[Any, Record] = {}
    for record in records:
        seen.setdefault(record.get("id"), record)
    return tuple(seen.values())


def by_kind(keys: Iterable[EntityKey]) -> Mapping[Kind, list[int]]:
    grouped: dict[Kind, list[int]] = {}
    for key in keys:
        grouped.setdefault(key.kind, []).append(key.pk)
    return grouped
