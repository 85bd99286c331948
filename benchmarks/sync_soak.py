"""Soak the sync: writers, kill -9, a faulty target, both databases; then check it converged.

The target's data (20 posts, 100 comments) is imported first. Each round, two writer threads
change posts and comments while a `manage.py sync_changes` process (now and then `--full`) runs
against the target; the in-process fake targets fail a share of calls (503s, answers lost before
and after the write). About a third of the runs are killed with SIGKILL at a random moment.
After the rounds the writers stop, the faults are cleared and clean runs follow; the verdict
checks that the target equals the database with no duplicate (ids compared as the target
compares them), no event pending, and that one more run and a --full run make no call.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/news \\
        .venv/bin/python benchmarks/sync_soak.py --rounds 20 [--database postgres|sqlite|both] \\
        [--target fake|fake-assigning|fake-string-ids|json-server-1.0]

`--target`: the fake target keeping the ids it is sent (as json-server 0.17), one that assigns
its own integer ids, one that gives string ids (as json-server 1.0), or the real json-server
1.0.0-beta.15 (installed with npm into testing/.json-server/; it cannot be told to fail, so its
rounds have kills only). The last line reads `SUMMARY soak: postgres PASS (...); sqlite PASS
(...)`; exit 1 on a FAIL. Bounded: at most --rounds rounds of about --seconds each; traffic stays
on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGETS = ("fake", "fake-assigning", "fake-string-ids", "json-server-1.0")
CALLS = re.compile(r"^(?:Synced|Incomplete: synced) \d+ entities with (\d+) calls", re.MULTILINE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=1.5, help="length of one round")
    parser.add_argument("--database", choices=["postgres", "sqlite", "both"], default="both")
    parser.add_argument("--target", choices=TARGETS, default="fake")
    parser.add_argument(
        "--assign-ids", action="store_true", help="the same as --target fake-assigning"
    )
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if args.assign_ids:
        args.target = "fake-assigning"
    if args.database != "both":
        sys.exit(soak(args))
    verdicts = []
    for database in ("postgres", "sqlite"):
        command = [sys.executable, __file__, *sys.argv[1:], "--database", database]
        done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
        sys.stdout.write(done.stdout)
        sys.stderr.write(done.stderr[-2000:])
        lines = done.stdout.strip().splitlines()
        verdicts.append(lines[-1].removeprefix("VERDICT ") if lines else f"{database} FAIL")
    print("SUMMARY soak: " + "; ".join(verdicts))
    sys.exit(0 if all(" PASS " in f" {v} " for v in verdicts) else 1)


def soak(args) -> int:
    sqlite_file = None
    if args.database == "sqlite":
        sqlite_file = Path(tempfile.mkdtemp()) / "soak.sqlite3"
        os.environ["DATABASE_URL"] = f"sqlite:///{sqlite_file}"
    sys.path.insert(0, str(ROOT))
    from benchmarks.support import throwaway_database

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "news_project.settings")
    os.environ.setdefault("DJANGO_SECRET_KEY", "benchmark-only-insecure-key")
    if sqlite_file is None:
        with throwaway_database("sync_soak"):
            return run_rounds(args)
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    return run_rounds(args)


@contextlib.contextmanager
def the_target(name: str, seed: int):
    """The target of the soak, serving 20 generated posts and their comments."""
    from fake_target import FakeTarget
    from fake_target.data import generate_dataset

    posts, comments = generate_dataset(20, seed=seed)
    if name == "json-server-1.0":
        from testing.json_server import running

        with running("1.0", {"posts": posts, "comments": comments}) as server:
            yield server
        return
    with FakeTarget(
        latency=0.003,
        seed=seed,
        assign_ids=name == "fake-assigning",
        string_ids=name == "fake-string-ids",
    ) as target:
        target.load(posts=posts, comments=comments)
        yield target


def run_rounds(args) -> int:
    from django.core.management import call_command
    from django.db import connection

    from testing.processes import database_url

    rng = random.Random(args.seed)
    database = "postgres" if connection.vendor == "postgresql" else "sqlite"
    lock_file = Path(tempfile.mkdtemp()) / "soak.lock"
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "SYNC_LOCK_FILE": str(lock_file),
        "SYNC_RETRIES": "1",
        "SYNC_BACKOFF_FACTOR": "0.01",
        "SYNC_BACKOFF_MAX": "0.02",
        "SYNC_TIME_BUDGET": "0",
        "DJANGO_DEBUG": "1",
    }
    counts = {"runs": 0, "killed": 0, "full": 0, "changes": 0}
    faulty = args.target != "json-server-1.0"
    with the_target(args.target, args.seed) as target:
        call_command("import_initial_data", "--url", target.url, stdout=io.StringIO())
        for _ in range(args.rounds):
            if faulty:
                target.fail(503, share=0.08)
                target.drop(share=0.04, writes_only=True)
                target.drop(share=0.04, writes_only=True, after_processing=True)
            stop = threading.Event()
            writers = [
                threading.Thread(target=write_changes, args=(stop, rng.random(), counts))
                for _ in range(2)
            ]
            for writer in writers:
                writer.start()
            full = rng.random() < 0.2
            counts["full"] += full
            run = start_sync(target.url, env, full=full)
            counts["runs"] += 1
            if rng.random() < 0.35:
                time.sleep(rng.uniform(0.05, args.seconds))
                run.send_signal(signal.SIGKILL)
                counts["killed"] += 1
            time.sleep(args.seconds)
            stop.set()
            for writer in writers:
                writer.join()
            run.communicate(timeout=120)
            if faulty:
                target.clear_faults()
        clean_codes = []
        for _ in range(3):
            clean_codes.append(finish(start_sync(target.url, env))[0])
            if clean_codes[-1] == 0:
                break
        problems = check(target)
        again, again_calls = finish(start_sync(target.url, env))
        full_again, full_calls = finish(start_sync(target.url, env, full=True))
    if clean_codes[-1] != 0 or again != 0 or full_again != 0:
        problems.append(f"clean runs exited {clean_codes}, then {again} and {full_again}")
    if again_calls or full_calls:
        problems.append(f"{again_calls} and {full_calls} calls after the target was already equal")
    figures = (
        f"{args.target}, {args.rounds} rounds, {counts['changes']} changes, {counts['runs']} "
        f"runs ({counts['full']} full, {counts['killed']} killed)"
    )
    for problem in problems:
        print(f"{database}: {problem}")
    verdict = "PASS" if not problems else "FAIL"
    print(f"{database}: {figures}; target equal to the database: {'yes' if not problems else 'no'}")
    print(f"VERDICT {database} {verdict} ({figures})")
    return 0 if not problems else 1


def finish(run: subprocess.Popen) -> tuple[int, int]:
    """A run's exit status and the calls its summary line counts (-1: no summary)."""
    output, _ = run.communicate(timeout=180)
    found = CALLS.search(output or "")
    return run.returncode, int(found.group(1)) if found else -1


def write_changes(stop: threading.Event, seed: float, counts: dict) -> None:
    """Random creates, edits (some no-ops) and deletes through the ORM until told to stop."""
    from django.db import DatabaseError, connection

    from news.models import Comment, Post

    rng = random.Random(seed)
    try:
        while not stop.is_set():
            try:
                change(rng, Post, Comment)
                counts["changes"] += 1
            except (DatabaseError, Post.DoesNotExist, Comment.DoesNotExist):
                # SQLite busy, or a post the other writer deleted a moment ago.
                time.sleep(0.01)
            time.sleep(0.002)
    finally:
        connection.close()


def change(rng: random.Random, Post, Comment) -> None:
    roll = rng.random()
    posts = list(Post.objects.values_list("pk", flat=True)[:200])
    if roll < 0.3 or not posts:
        Post.objects.create(user_id=rng.randint(1, 5), title=f"t{rng.random()}", body="b")
    elif roll < 0.5:
        Comment.objects.create(post_id=rng.choice(posts), name="n", email="e@x.io", body="c")
    elif roll < 0.8:
        post = Post.objects.get(pk=rng.choice(posts))
        post.title = post.title if rng.random() < 0.2 else f"t{rng.random()}"
        post.save()
    elif roll < 0.9:
        comment = Comment.objects.filter(post_id__in=posts).order_by("?").first()
        if comment is not None:
            comment.delete()
    else:
        Post.objects.filter(pk=rng.choice(posts)).delete()


def check(target) -> list[str]:
    """What keeps the target from equalling the database: records that differ (ids compared by
    their text), duplicates, events still pending, records two entities hold."""
    from django.db.models import Count

    from news.models import Comment, Post
    from sync.models import EntitySyncState, ModelEvent
    from sync.target import TABLES, remote_key, to_record

    def held(table: str) -> dict:
        return dict(
            EntitySyncState.objects.filter(
                entity_table=table, remote_key__isnull=False
            ).values_list("entity_pk", "remote_id")
        )

    def canonical(records) -> list[dict]:
        keyed = [{**r, "id": remote_key(r["id"])} for r in records]
        for record in keyed:
            if record.get("postId") is not None:
                record["postId"] = remote_key(record["postId"])
        return sorted(keyed, key=lambda r: r["id"])

    posts, comments = held(TABLES[kind_of(Post)]), held(TABLES[kind_of(Comment)])
    expected = {
        "posts": canonical(
            to_record(p, remote_id=posts.get(p.pk, p.pk)) for p in Post.objects.all()
        ),
        "comments": canonical(
            to_record(
                c,
                remote_id=comments.get(c.pk, c.pk),
                post_remote_id=posts.get(c.post_id, c.post_id),
            )
            for c in Comment.objects.all()
        ),
    }
    actual = {name: canonical(records) for name, records in target.state().items()}
    problems = []
    for name in ("posts", "comments"):
        extra = len(actual[name]) - len(expected[name])
        if actual[name] != expected[name]:
            problems.append(f"{name} differ ({extra:+d} records on the target)")
    pending = ModelEvent.objects.pending().count()
    if pending:
        problems.append(f"{pending} events still pending")
    shared = (
        EntitySyncState.objects.filter(remote_key__isnull=False)
        .values("entity_table", "remote_key")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .count()
    )
    if shared:
        problems.append(f"{shared} records held by two entities")
    return problems


def kind_of(model):
    from sync.planner import Kind

    return Kind.POST if model.__name__ == "Post" else Kind.COMMENT


def start_sync(url: str, env: dict, *, full: bool = False) -> subprocess.Popen:
    command = [sys.executable, "manage.py", "sync_changes", "--url", url, "--max-rps", "0"]
    if full:
        command.append("--full")
    return subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )


if __name__ == "__main__":
    main()
