"""What a buyer of a sync engine reads first: how soon a change reaches the target, how many
records a second get there, and what the target's limits do to both.

A fake target serving from a process of its own answers each call after --latency seconds, in
three ways in turn: as it is; with a tenth of the calls answered 429 (no Retry-After); limited to
--limit requests a second (429 with Retry-After beyond it). For each:

- live: API writes at --rate changes a second for --seconds seconds while `sync_changes
  --follow` delivers them; the lag from a change's commit to the target's acknowledgement of its
  final state (p50, p99), and that every run made exactly the calls of its net changes;
- backlog: --backlog pending creates sent by one run (`--max-rps 0`, --concurrency calls at
  once, from no known rate): records a second, the share of calls answered 429, calls = net
  changes.

The limited target's backlog is the pacing goal: at most 5 % of calls answered 429, and within
1.3x of the time the backlog takes at exactly --limit a second (judged from 1,000 calls). Every
figure is checked against the target: it must equal the database, with nothing pending.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/news \
        .venv/bin/python benchmarks/delivery_bench.py

Runs on a throwaway database `<name>_delivery`. The last line reads `SUMMARY delivery: ...`;
exit 1 when calls differ from net changes, something is lost, or the pacing goal is missed.
"""

from __future__ import annotations

import argparse
import random
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.lag_checks import (  # noqa: E402
    check_runs,
    database_state,
    lags,
    percentile,
    target_state,
)
from benchmarks.support import target_process, throwaway_database  # noqa: E402
from benchmarks.sync_lag import Workload, start_follower  # noqa: E402

MAX_REFUSED, MAX_SLOWDOWN = 0.05, 1.3
# The pacing goal is judged on backlogs this large: a smaller one is mostly the first seconds, in
# which the run finds the target's limit.
JUDGED_BACKLOG = 1000


@dataclass
class Row:
    target: str
    p50: float = 0.0
    p99: float = 0.0
    live_minimal: bool = False
    records_per_second: float = 0.0
    refused_share: float = 0.0
    backlog_seconds: float = 0.0
    backlog_minimal: bool = False
    equal: bool = False

    def __str__(self) -> str:
        return (
            f"| {self.target} | {self.p50:.2f} / {self.p99:.2f} s | "
            f"{'yes' if self.live_minimal else 'NO'} | {self.records_per_second:,.0f} | "
            f"{self.refused_share:.1%} | {'yes' if self.backlog_minimal else 'NO'} |"
        )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=20.0, help="live changes per second")
    parser.add_argument("--seconds", type=float, default=20.0, help="how long to write live")
    parser.add_argument("--backlog", type=int, default=2000, help="creates sent by one run")
    parser.add_argument("--limit", type=float, default=100.0, help="the limited target's rate")
    parser.add_argument("--latency", type=float, default=0.02, help="seconds per target answer")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    if min(args.rate, args.seconds, args.limit) <= 0 or args.backlog < 1:
        parser.error("--rate, --seconds, --limit and --backlog must be positive")
    return args


def live(args, target, row: Row, rng: random.Random) -> None:
    """Writes at a steady rate while a follower delivers them: the lag, and minimal runs."""
    from django.contrib.auth import get_user_model
    from django.utils import timezone
    from rest_framework.test import APIClient

    from sync.models import ModelEvent

    user, _ = get_user_model().objects.get_or_create(username="delivery-bench")
    api = APIClient()
    api.force_authenticate(user)
    workload = Workload(api, rng)
    target.reset_log()
    started_at = timezone.now()
    follower, _ = start_follower(target.url, args.concurrency)
    try:
        begin = time.monotonic()
        for number in range(int(args.rate * args.seconds)):
            pause = begin + number / args.rate - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            workload.change(number)
        deadline = time.monotonic() + 120
        while ModelEvent.objects.pending().exists() and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        follower.send_signal(signal.SIGTERM)
        follower.wait(60)
    sorted_lags, late = lags(target, workload.committed)
    runs, stray = check_runs(started_at, target)
    row.p50, row.p99 = percentile(sorted_lags, 0.50), percentile(sorted_lags, 0.99)
    row.live_minimal = all(run.minimal for run in runs) and not late and not stray
    for run in runs:
        if not run.minimal:
            print(f"{row.target}: run {run} is not minimal", file=sys.stderr)
    if late or stray:
        print(f"{row.target}: {late} late, {stray} events settled by no run", file=sys.stderr)


def backlog(args, target, row: Row) -> None:
    """Pending creates sent by one run: records a second, 429s, calls = net changes."""
    from news.models import Post
    from sync.client import TargetApiClient
    from sync.models import SyncTarget
    from sync.syncing import SyncOptions, sync_changes

    # From no known rate: the run finds the target's limit itself.
    SyncTarget.objects.update(rate=None)
    Post.objects.bulk_create(
        Post(user_id=1, title=f"backlog {n}", body="b") for n in range(args.backlog)
    )
    target.reset_log()
    with TargetApiClient(base_url=target.url, timeout=10.0, max_rps=0) as client:
        started = time.monotonic()
        report = sync_changes(
            client=client, options=SyncOptions(concurrency=args.concurrency, batch_size=500)
        )
        row.backlog_seconds = time.monotonic() - started
    writes = [r for r in target.calls() if r.is_write]
    refused = sum(1 for r in writes if r.status == 429)
    row.records_per_second = report.entities_synced / row.backlog_seconds
    row.refused_share = refused / max(1, len(writes))
    row.backlog_minimal = report.ok and report.calls_made == args.backlog == len(writes) - refused


def benchmark(args: argparse.Namespace) -> int:
    from sync.models import ModelEvent

    rng = random.Random(args.seed)
    rows = [
        Row("as it is"),
        Row("1 call in 10 answered 429"),
        Row(f"limited to {args.limit:g} requests/s"),
    ]
    with target_process(latency=args.latency, seed=args.seed) as target:
        for row in rows:
            target.clear_faults()
            target.set("rate_limit", args.limit if row is rows[2] else 0.0)
            if row is rows[1]:
                target.fail(429, share=0.1, retry_after=None)
            live(args, target, row, rng)
            backlog(args, target, row)
            row.equal = (
                target_state(target) == database_state()
                and not ModelEvent.objects.pending().exists()
            )
    limited = rows[2]
    bound = args.backlog / args.limit
    slowdown = limited.backlog_seconds / bound
    judged = args.backlog >= JUDGED_BACKLOG
    paced = limited.refused_share <= MAX_REFUSED and slowdown <= MAX_SLOWDOWN
    verdict = ("met" if paced else "MISSED") if judged else f"not judged under {JUDGED_BACKLOG}"
    print(
        f"target latency {args.latency * 1000:.0f} ms; live: {args.rate:g} changes/s for "
        f"{args.seconds:g} s through the API, delivered by sync_changes --follow; backlog: "
        f"{args.backlog} creates sent by one run, {args.concurrency} calls at once"
    )
    print("| target | lag p50 / p99 | live runs minimal | records/s | calls answered 429 | "
          "backlog calls = net changes |")  # fmt: skip
    print("| --- | ---: | :---: | ---: | ---: | :---: |")
    for row in rows:
        print(row)
    print(
        f"pacing: {args.backlog} calls against {args.limit:g} requests/s took "
        f"{limited.backlog_seconds:.1f} s, {slowdown:.2f}x of {bound:.1f} s at exactly that rate "
        f"(goal {MAX_SLOWDOWN:g}x); {limited.refused_share:.1%} answered 429 (goal at most "
        f"{MAX_REFUSED:.0%})"
    )
    exact = all(row.live_minimal and row.backlog_minimal and row.equal for row in rows)
    print(
        "SUMMARY delivery: "
        + "; ".join(
            f"{row.target}: lag p50 {row.p50:.2f} s p99 {row.p99:.2f} s, "
            f"{row.records_per_second:,.0f} records/s, {row.refused_share:.1%} 429"
            for row in rows
        )
        + f"; calls = net changes and nothing lost: {'yes' if exact else 'NO'}; pacing "
        f"{slowdown:.2f}x and {limited.refused_share:.1%} 429: {verdict}"
    )
    return 0 if exact and (paced or not judged) else 1


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    with throwaway_database("delivery"):
        code = benchmark(args)
    sys.exit(code)


if __name__ == "__main__":
    main()
