"""Which of the target's records is whose, for a full run: a snapshot of the database against
the target's lists, keyed by the text of the records' ids.

Pure code: the snapshot and the lists in, owners, lookups and foreign records out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sync.ids import comparable_id, key_of, remote_key
from sync.planner import EntityKey, Kind
from sync.syncing.deliveries import Snapshot, SyncState, TargetTraits
from sync.target import ID_FIELDS, Record, holds, our_fields, record_hash


@dataclass
class Diff:
    """Who holds which record: `owner` by (kind, remote key); unconfirmed creates to look for;
    records nobody holds; records without a usable id."""

    """The target's records against the snapshot, by remote key."""

    owner: dict[tuple[Kind, str], EntityKey] = field(default_factory=dict)
    clashes: set[EntityKey] = field(default_factory=set)
    lookups: list[EntityKey] = field(default_factory=list)  # unconfirmed creates
    foreign: list[tuple[Kind, Record]] = field(default_factory=list)
    unaddressable: int = 0


def id_order(record: Record) -> tuple[int, int, str]:
    """Numbers first, in order, then texts."""
    ident = comparable_id(record["id"])
    if isinstance(ident, int):
        return (0, ident, "")
    return (1, 0, str(ident))


def comparable(record: Record) -> Record:
    """A record as the plan compares it: ids by their text ("5" and 5 alike)."""
    return {
        name: comparable_id(value) if name in ID_FIELDS else value for name, value in record.items()
    }


def holds_already(
    kind: Kind, found: Record, ours: Record, known: SyncState | None, rewritten: frozenset[str]
) -> bool:
    """The target holds our record, as it stores it: equal but for the fields it is known to
    rewrite, or exactly what it acknowledged when we last sent this very record."""
    if holds(found, ours, rewritten=rewritten):
        return True
    if known is None or not known.acknowledged_hash:
        return False
    stored = our_fields(kind, found)
    return known.delivered_hash == record_hash(ours) and known.acknowledged_hash == record_hash(
        stored
    )


def diff(snap: Snapshot, remote: dict[Kind, list[Record]], traits: TargetTraits) -> Diff:
    """Who holds which of the target's records.

    Mapped entities hold the record under their remote id, those the snapshot keeps as
    delivered included (their keys are taken; the target holds them as they are). An entity
    whose create is unconfirmed holds the record under its own id only on a target known to
    keep the ids it is sent, and if that record holds what it sent; otherwise it is looked for
    by its content.
    Other rows without a mapping are taken to be under their own id, as the import keeps ids;
    one whose own id another entity holds is a clash, to be created. Records nobody holds, and
    that hold no unconfirmed create's content (as the target is known to store it), are foreign.
    """
    diff = Diff()
    by_key: dict[tuple[Kind, str], Record] = {}
    for kind, records in remote.items():
        for record in records:
            key = key_of(record)
            if key is None:
                diff.unaddressable += 1
            else:
                by_key.setdefault((kind, key), record)
    for entity, state in sorted(snap.states.items()):
        if state.remote_id is not None:
            diff.owner[(entity.kind, remote_key(state.remote_id))] = entity
    unconfirmed: list[tuple[EntityKey, tuple[Record, ...]]] = []
    for entity in sorted(snap.records.keys() | snap.states.keys()):
        known = snap.states.get(entity)
        if known is not None and known.remote_id is not None:
            continue
        slot = (entity.kind, remote_key(entity.pk))
        if known is not None and known.unconfirmed:
            contents = contents_of(entity, snap)
            taken = slot in diff.owner or slot in snap.delivered
            own = by_key.get(slot) if not taken and traits.keeps_ids else None
            rewritten = traits.rewrites(entity.kind)
            if own is not None and any(holds(own, w, rewritten=rewritten) for w in contents):
                diff.owner[slot] = entity
            else:
                diff.lookups.append(entity)
                unconfirmed.append((entity, contents))
            continue
        if entity not in snap.records:
            continue  # gone, and never on the target
        if slot in diff.owner or slot in snap.delivered:
            diff.clashes.add(entity)
        else:
            diff.owner[slot] = entity
    for (kind, key), record in by_key.items():
        if (kind, key) in diff.owner or (kind, key) in snap.delivered:
            continue
        sought = [
            wanted for entity, contents in unconfirmed if entity.kind is kind for wanted in contents
        ]
        rewritten = traits.rewrites(kind)
        if any(holds(record, wanted, rewritten=rewritten) for wanted in sought):
            continue  # maybe an unconfirmed create's: its lookup decides
        diff.foreign.append((kind, record))
    return diff


def contents_of(entity: EntityKey, snap: Snapshot) -> tuple[Record, ...]:
    """What an unconfirmed create may have left on the target: what it sent, and the row now."""
    known = snap.states.get(entity)
    sent = known.unconfirmed_record if known is not None else None
    return tuple(r for r in (sent, snap.records.get(entity)) if r)
