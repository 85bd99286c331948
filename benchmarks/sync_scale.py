"""How the sync scales: a --full run's time and peak memory, and an incremental run's planning
under a long change log.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/news \\
        .venv/bin/python benchmarks/sync_scale.py --posts 200000 --comments 1000000 \\
        --events 10000000 --pending 1000

On a throwaway database (`<DATABASE_URL's name>_sync_scale`), for half the sizes and then the
whole: a fake target in a process of its own serves the generated posts and comments, the
initial import copies them into the database in a child process (so both hold the same records,
each with its sync state), the tables are vacuumed and analysed (as autovacuum would after a bulk
load), `--edits` records of the target are changed behind the sync's back, and
`manage.py sync_changes --full --max-rps 0 --time-budget 0` runs as a child process; its wall
time and peak RSS (`ru_maxrss`, Django's start included; this process stays small, as a child's
peak counts its parent's at the fork) are the figures. Goals: the whole under 400 MB, and at
most 2.2x the time of half.

Then, on the whole data set, the planning of an incremental run (the pending events read and
merged into calls, nothing sent: what `--dry-run` does before it prints) of `--pending` changes
made through the ORM: first with no other event in the log, then with `--events` synced events
before them (written with one `INSERT ... SELECT generate_series`, then `VACUUM ANALYZE`, as
autovacuum would). The fastest of `--repeats` plans each. Goal: at most 1.2x the empty log's.
Exit status 1 when a goal is missed. The goals are judged from 100,000 posts and 1,000,000
events: smaller runs (CI's) are mostly a process's start and a few milliseconds of planning.
"""

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.support import run_measured, target_process, throwaway_database  # noqa: E402
from testing.processes import database_url  # noqa: E402

PROJECT = Path(__file__).resolve().parent.parent
GOAL_MEGABYTES = 400.0
JUDGED_POSTS, JUDGED_EVENTS = 100_000, 1_000_000
GOAL_FULL_RATIO = 2.2
GOAL_PLAN_RATIO = 1.2


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=200_000)
    parser.add_argument("--comments", type=int, default=1_000_000, help="a multiple of --posts")
    parser.add_argument("--edits", type=int, default=0, help="records of the target changed")
    parser.add_argument("--events", type=int, default=10_000_000, help="synced events in the log")
    parser.add_argument("--pending", type=int, default=1000, help="changes the plan merges")
    parser.add_argument("--repeats", type=int, default=7, help="plans timed, the fastest kept")
    args = parser.parse_args(argv)
    if args.posts < 2 or args.comments % args.posts or args.comments < args.posts:
        parser.error("--posts must be at least 2 and --comments a multiple of it")
    if min(args.edits, args.events) < 0 or min(args.pending, args.repeats) < 1:
        parser.error("--pending and --repeats must be at least 1, the others not negative")
    if args.pending > args.posts // 2 + args.comments // 2 or args.edits > args.posts // 2:
        parser.error("--pending must not exceed the entities, --edits half the posts")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    per_post = args.comments // args.posts
    with throwaway_database("sync_scale"), target_process() as target:
        head = f"{'posts':>8} {'comments':>9} {'calls':>6} {'seconds':>8} {'CPU s':>8}"
        print(f"{'run':<28} {head} {'peak MB':>8}")
        half = full_run(target, args.posts // 2, per_post, args.edits, label="--full, half")
        whole = full_run(target, args.posts, per_post, args.edits, label="--full")
        print(f"\n{'plan of pending changes':<28} {'pending':>8} {'log':>14} {'seconds':>8}")
        empty = planning(args.pending, 0, args.repeats)
        crowded = planning(args.pending, args.events, args.repeats)
    full_ratio = whole[0] / half[0]
    plan_ratio = crowded / empty
    memory_met = whole[1] < GOAL_MEGABYTES
    full_met = memory_met and full_ratio <= GOAL_FULL_RATIO
    plan_met = plan_ratio <= GOAL_PLAN_RATIO
    judged = args.posts >= JUDGED_POSTS and args.events >= JUDGED_EVENTS
    print(
        f"SUMMARY sync_scale: --full of {args.posts} posts and {args.comments} comments "
        f"({args.edits} edited) in {whole[0]:.1f} s = {full_ratio:.2f}x half's {half[0]:.1f} s, "
        f"peak {whole[1]:.0f} MB (goals <= {GOAL_FULL_RATIO}x, < {GOAL_MEGABYTES:.0f} MB: "
        f"{_met(full_met, judged)}); planning {args.pending} pending changes with {args.events} "
        f"synced events {crowded * 1000:.1f} ms = {plan_ratio:.2f}x the empty log's "
        f"{empty * 1000:.1f} ms (goal <= {GOAL_PLAN_RATIO}x: {_met(plan_met, judged)})"
    )
    return 0 if (full_met and plan_met) or not judged else 1


def _met(met: bool, judged: bool) -> str:
    if not judged:
        return f"not judged under {JUDGED_POSTS:,} posts and {JUDGED_EVENTS:,} events"
    return "met" if met else "MISSED"


# --- A full run -----------------------------------------------------------------------------------


def full_run(target, posts: int, per_post: int, edits: int, *, label: str) -> tuple[float, float]:
    """Seconds and peak megabytes of `sync_changes --full` over the same records on both sides."""
    from sync.client import TargetApiClient

    _empty_database()
    target.load_generated(posts, comments_per_post=per_post)
    # In a child too: a child's peak RSS counts its parent's at the fork, so this one stays small.
    importing = ["import_initial_data", "--url", target.url, "--timeout", "300"]
    exit_code, output, *_ = _run_measured([sys.executable, "manage.py", *importing])
    if exit_code != 0:
        raise SystemExit(f"{label}: import_initial_data exited {exit_code}: {output.strip()}")
    _vacuum("news_post", "news_comment", "sync_entitysyncstate")
    with TargetApiClient(base_url=target.url, timeout=300) as client:
        for post_id in range(1, edits + 1):
            client.update("posts", post_id, {**client.get("posts", post_id), "title": "edited"})
    command = [sys.executable, "manage.py", "sync_changes", "--full", "--url", target.url]
    exit_code, output, wall, peak_kb, cpu = _run_measured(
        [*command, "--max-rps", "0", "--time-budget", "0"]
    )
    summary = output.strip().splitlines()[-1] if output.strip() else ""
    if exit_code != 0 or f"with {edits} calls" not in summary:
        raise SystemExit(f"{label}: sync_changes --full exited {exit_code}: {output.strip()}")
    megabytes = peak_kb / 1024
    print(
        f"{label:<28} {posts:>8} {posts * per_post:>9} {edits:>6} {wall:>8.2f} {cpu:>8.2f} "
        f"{megabytes:>8.0f}",
        flush=True,
    )
    return wall, megabytes


def _empty_database() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE news_comment, news_post, sync_entitysyncstate, sync_modelevent, "
            "sync_synctarget, sync_syncrun RESTART IDENTITY CASCADE"
        )


def _vacuum(*tables: str) -> None:
    """What autovacuum does after a bulk load: statistics, hint bits, the visibility map."""
    from django.db import connection

    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f"VACUUM ANALYZE {table}")


def _run_measured(command: list[str]) -> tuple[int, str, float, int, float]:
    """Exit code, output, wall seconds, peak RSS (KiB) and CPU seconds of a child process."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "DJANGO_SECRET_KEY": "benchmark-only-secret-key",
        "DJANGO_DEBUG": "0",
        "DJANGO_ENV_FILE": "",
    }
    measured = run_measured(command, env, PROJECT)
    return measured.exit_code, measured.output, measured.wall, measured.peak_kib, measured.cpu


# --- Planning under a long log --------------------------------------------------------------------


def planning(pending: int, synced: int, repeats: int) -> float:
    """The fastest of `repeats` plans of `pending` changes after `synced` synced events."""
    from django.db import connection

    from news.models import Comment, Post
    from sync.syncing.incremental import IncrementalSource
    from sync.syncing.report import SyncOptions

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE sync_modelevent RESTART IDENTITY")
        # Synced updates spread over every entity, a post for every five comments.
        cursor.execute(
            "INSERT INTO sync_modelevent (entity_table, entity_pk, type, logged_at, synced_at) "
            "SELECT CASE WHEN mod(g, 6) = 0 THEN 'news_post' ELSE 'news_comment' END, "
            "CASE WHEN mod(g, 6) = 0 THEN 1 + mod(g / 6, %s) ELSE 1 + mod(g, %s) END, "
            "'UPDATED', now() - interval '1 day', now() - interval '1 day' "
            "FROM generate_series(1, %s) AS g",
            [Post.objects.count(), Comment.objects.count(), synced],
        )
    _make_changes(pending)
    _vacuum("sync_modelevent")
    seconds = []
    for _ in range(repeats):
        source = IncrementalSource(options=SyncOptions(), settle_time=0.0, undelivered_posts=set())
        started = time.perf_counter()
        plan = source.plan(dry_run=True)
        seconds.append(time.perf_counter() - started)
        if len(plan.calls) != pending:
            raise SystemExit(f"{len(plan.calls)} calls planned for {pending} pending changes")
    best = min(seconds)
    log = f"{synced:,} synced" if synced else "empty"
    print(f"{'':<28} {pending:>8} {log:>14} {best:>8.4f}", flush=True)
    return best


def _make_changes(pending: int) -> None:
    """`pending` edits through the ORM (each logs an event): half posts, half comments."""
    from news.models import Comment, Post

    posts = Post.objects.order_by("pk")[: pending - pending // 2]
    comments = Comment.objects.order_by("pk")[: pending // 2]
    for obj in [*posts, *comments]:
        if isinstance(obj, Post):
            obj.title = f"{obj.title[:60]} (edited)"
        else:
            obj.name = f"{obj.name[:60]} (edited)"
        obj.save()


if __name__ == "__main__":
    sys.exit(main())
