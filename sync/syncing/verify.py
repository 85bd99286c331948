"""Proving the target equal: a read-only comparison of the target with the database.

It is a full run's plan and nothing more: the same snapshot, the same lists of the target, the
same comparison (ids by their text, the fields the target rewrites allowed for); it sends no
call, holds no run lock and changes no sync state. Each difference is a record the target
lacks (missing), holds beyond the database (extra) or holds otherwise (different). Its result is
kept, for `sync_status` and `/metrics`.

Writes made outside Django (raw SQL, another service on the same database) never reach the
change log; this is how they show.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from sync.client import TargetApiClient, canonical_url
from sync.planner import Kind, Op
from sync.syncing import loading, outcomes
from sync.syncing.deliveries import TargetTraits
from sync.syncing.full import FullSource
from sync.syncing.report import SyncOptions

WHAT = {Op.CREATE: "missing", Op.DELETE: "extra", Op.UPDATE: "different"}


@dataclass
class Verification:
    target: str
    counts: dict[str, dict[str, int]]
    differences: list[dict] = field(default_factory=list)  # the first `limit` of them
    total: int = 0
    awaiting: int = 0  # of the entities whose changes wait for the next run
    seconds: float = 0.0
    id: int | None = None

    @property
    def equal(self) -> bool:
        return self.total == 0

    def lines(self) -> list[str]:
        head = "equal" if self.equal else f"{self.total} differences"
        lines = [f"Verified {self.target} against the database in {self.seconds:.1f} s: {head}"]
        for resource, counts in self.counts.items():
            lines.append(
                f"  {resource}: {counts['missing']} missing, {counts['extra']} extra, "
                f"{counts['different']} different"
            )
        if self.awaiting:
            lines.append(
                f"  {self.awaiting} of them are changes the next run delivers (pending events)"
            )
        return lines

    def as_dict(self) -> dict:
        return {
            "id": self.id,
            "target": self.target,
            "equal": self.equal,
            "counts": self.counts,
            "total": self.total,
            "awaiting": self.awaiting,
            "seconds": round(self.seconds, 3),
            "differences": self.differences,
            "listed": len(self.differences),
        }


def verify_target(*, client: TargetApiClient, limit: int = 100) -> Verification:
    """Compare the whole target with the database; record and return what differs."""
    started = time.monotonic()
    url = canonical_url(client.base_url)
    # The target the sync state describes, if it is this one.
    current = loading.the_target()
    if current is not None and current.url != url:
        current = None
    source = FullSource(
        client=client,
        options=SyncOptions(max_foreign_deletes=None),
        traits=TargetTraits(current.rewrites, current.keeps_ids) if current else TargetTraits(),
        settle_time=0.0,
    )
    source.plan(dry_run=True)
    counts = {kind.resource: dict.fromkeys(WHAT.values(), 0) for kind in Kind}
    differences: list[dict] = []
    awaiting = 0
    for planned in source.planned:
        call = planned.call
        what = WHAT[call.op]
        counts[call.key.kind.resource][what] += 1
        pending = not planned.foreign and call.key in source.awaiting
        awaiting += pending
        if len(differences) < limit:
            differences.append(
                {
                    "kind": call.key.kind.value,
                    "what": what,
                    "entity": None if planned.foreign else call.key.pk,
                    "remote_id": planned.remote_id if call.op is not Op.CREATE else None,
                    "awaiting_delivery": pending,
                }
            )
    result = Verification(
        target=url,
        counts=counts,
        differences=differences,
        total=len(source.planned),
        awaiting=awaiting,
        seconds=time.monotonic() - started,
    )
    result.id = outcomes.record_verification(
        target=url, counts=counts, differences=differences, awaiting=awaiting
    )
    return result
