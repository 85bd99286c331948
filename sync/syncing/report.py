"""What a run reports: counts, failures, why it stopped early, and notices for the operator."""

from __future__ import annotations

from dataclasses import dataclass, field

from sync.planner import Call, EntityKey, Op
from sync.target import RemoteId


@dataclass(frozen=True)
class SyncOptions:
    concurrency: int = 4
    batch_size: int = 500
    max_attempts: int = 5
    # Seconds after which a run starts no new call; what is left stays pending. 0: no limit.
    time_budget: float = 0.0
    # The target deletes a post's comments with it (json-server 0.17 does).
    cascade_deletes: bool = False
    # A full run deletes at most this many records that no entity of ours holds; None: any.
    max_foreign_deletes: int | None = 10


@dataclass(frozen=True)
class FailedEntity:
    entity: EntityKey
    call: str
    error: str
    permanent: bool = False

    def __str__(self) -> str:
        return f"{self.call}: {self.error}"


@dataclass(frozen=True)
class PlannedCall:
    """A call as a dry run shows it: method, the target's path, the entity."""

    call: Call
    remote_id: RemoteId | None
    foreign: bool = False  # a record of the target that no entity of ours holds

    def __str__(self) -> str:
        path = f"/{self.call.key.kind.resource}"
        if self.call.op is not Op.CREATE and self.remote_id is not None:
            path += f"/{self.remote_id}"
        whose = "not in the database" if self.foreign else str(self.call.key)
        return f"{self.call.op.method} {path}  ({whose})"


@dataclass
class SyncReport:
    mode: str
    dry_run: bool
    events_pending: int = 0
    calls: dict[Op, int] = field(default_factory=lambda: dict.fromkeys(Op, 0))
    # Calls that were sent (a write went out) and did not deliver the entity's state.
    failed_calls: dict[Op, int] = field(default_factory=lambda: dict.fromkeys(Op, 0))
    entities_synced: int = 0
    entities_unchanged: int = 0
    failed: list[FailedEntity] = field(default_factory=list)
    planned: tuple[PlannedCall, ...] = ()
    duration: float = 0.0
    run_id: int | None = None
    stopped_early: str = ""
    # The target's base URL, normalised, and whether this run adopted it.
    target: str = ""
    adopted_target: bool = False
    notices: list[str] = field(default_factory=list)

    @property
    def calls_made(self) -> int:
        return sum(self.calls.values())

    @property
    def ok(self) -> bool:
        return not self.failed and not self.stopped_early

    def notice(self, text: str) -> None:
        if text not in self.notices:
            self.notices.append(text)

    def summary(self) -> str:
        if self.dry_run:
            counts = {op: sum(1 for p in self.planned if p.call.op is op) for op in Op}
            unchanged = (
                f", {self.entities_unchanged} needing no call" if self.entities_unchanged else ""
            )
            return (
                f"Dry run: {len(self.planned)} calls planned ({counts[Op.CREATE]} create, "
                f"{counts[Op.UPDATE]} update, {counts[Op.DELETE]} delete){unchanged}; "
                "nothing sent"
            )
        # A run that failed or stopped early never begins "Synced".
        # Calls that reached the target and failed are counted apart from those that delivered.
        failed_calls = sum(self.failed_calls.values())
        also = f" and {failed_calls} failed call{'s' * (failed_calls != 1)}" if failed_calls else ""
        text = (
            f"{'Synced' if self.ok else 'Incomplete: synced'} "
            f"{self.entities_synced} entities with {self.calls_made} calls "
            f"({self.calls[Op.CREATE]} created, {self.calls[Op.UPDATE]} updated, "
            f"{self.calls[Op.DELETE]} deleted){also}, {self.entities_unchanged} needing no call; "
            f"{len(self.failed)} failed in {self.duration:.1f} s"
        )
        return f"{text}; {self.stopped_early}" if self.stopped_early else text
