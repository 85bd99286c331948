"""What reached the target in the lag benchmark (benchmarks/sync_lag.py): lags, and each run's
calls against the net changes of the events it settled."""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass

Key = tuple[str, int]  # ("posts" or "comments", pk)


def database_state() -> dict[str, dict[int, dict]]:
    from news.models import Comment, Post
    from sync.target import to_record

    return {
        "posts": {p.pk: to_record(p, remote_id=p.pk) for p in Post.objects.all()},
        "comments": {
            c.pk: to_record(c, remote_id=c.pk, post_remote_id=c.post_id)
            for c in Comment.objects.all()
        },
    }


def target_state(target) -> dict[str, dict[int, dict]]:
    return {name: {r["id"]: r for r in records} for name, records in target.state().items()}


def entity_of(request) -> Key:
    resource, _, rest = request.path.strip("/").partition("/")
    return (resource, int(rest) if rest else request.body["id"])


def lags(target, committed: dict[Key, float]) -> tuple[list[float], int]:
    """Seconds from each entity's last commit to the answer of its last call; and how many
    entities' last change came after their last call (not delivered)."""
    last_call: dict[Key, float] = {}
    for request in target.calls():
        if request.is_write and request.status and request.status < 300:
            last_call[entity_of(request)] = request.answered_at
    found, late = [], 0
    for key, answered_at in last_call.items():
        if key in committed and answered_at >= committed[key]:
            found.append(answered_at - committed[key])
        elif key in committed:
            late += 1
    return sorted(found), late


@dataclass
class RunCheck:
    """One follower run: its calls as it reports them and as the target received them, and
    the net changes of the events it settled."""

    id: int
    started: float  # Unix time
    finished: float
    calls: int
    unchanged: int  # entities whose record the target already held: no call
    net: int = 0
    received: int = 0  # writes the target received while the run ran
    entities_written_twice: int = 0

    @property
    def minimal(self) -> bool:
        return self.calls == self.received == self.net - self.unchanged and not (
            self.entities_written_twice
        )


def check_runs(started_at, target) -> tuple[list[RunCheck], int]:
    """Every run since `started_at`, checked; and the events that no run's time holds.

    A run's events are those marked synced while it ran (runs never overlap). Their net
    changes follow the planner's rules from what the runs before left on the target: an entity
    on the target gets a PUT or a DELETE, one not there a POST, or nothing if deleted again.
    """
    from sync.models import ModelEvent, SyncRun

    runs = [
        RunCheck(pk, start.timestamp(), end.timestamp(), created + updated + deleted, unchanged)
        for pk, start, end, created, updated, deleted, unchanged in SyncRun.objects.filter(
            started_at__gte=started_at, finished_at__isnull=False
        )
        .order_by("started_at")
        .values_list(
            "id",
            "started_at",
            "finished_at",
            "calls_created",
            "calls_updated",
            "calls_deleted",
            "entities_unchanged",
        )
    ]
    starts = [run.started for run in runs]

    def run_at(moment: float) -> RunCheck | None:
        index = bisect_right(starts, moment) - 1
        return runs[index] if index >= 0 and moment <= runs[index].finished else None

    settled: dict[int, dict[Key, list[str]]] = {run.id: {} for run in runs}
    stray = 0
    for table, pk, kind, synced_at in (
        ModelEvent.objects.synced()
        .filter(synced_at__gte=started_at)
        .order_by("id")
        .values_list("entity_table", "entity_pk", "type", "synced_at")
    ):
        run = run_at(synced_at.timestamp())
        if run is None:
            stray += 1
            continue
        key = ("posts" if table == "news_post" else "comments", pk)
        settled[run.id].setdefault(key, []).append(kind)
    present: set[Key] = set()
    for run in runs:
        for key, kinds in settled[run.id].items():
            if key in present:
                run.net += 1  # a PUT (every edit here changes the record) or a DELETE
                if kinds[-1] == "DELETED":
                    present.discard(key)
            elif kinds[-1] != "DELETED":
                run.net += 1  # a POST
                present.add(key)
    written: dict[int, list[Key]] = {run.id: [] for run in runs}
    for request in target.calls():
        # A write the target refused for its load (429, 503) and that was tried again is no call.
        applied = request.is_write and request.status not in (429, 503)
        run = run_at(request.received_at) if applied else None
        if run is not None:
            written[run.id].append(entity_of(request))
    for run in runs:
        run.received = len(written[run.id])
        run.entities_written_twice = len(written[run.id]) - len(set(written[run.id]))
    return runs, stray


def percentile(values: list[float], share: float) -> float:
    return values[min(len(values) - 1, int(share * len(values)))] if values else 0.0
