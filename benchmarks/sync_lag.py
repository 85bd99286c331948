"""Lag of the live sync: API writes at a steady rate while `sync_changes --follow` delivers them.

Starts an in-process fake target that answers each call after --latency seconds and a
`manage.py sync_changes --follow` process against it, then writes through the API test client
at --rate changes per second for --seconds seconds: creates, edits and deletes of posts and
comments, half of the edits to entities changed moments before. Once the follower has caught
up it is stopped with SIGTERM, and the script reports:

- for each entity the target had to change, the lag from the commit of its last change (the
  API's answer) to the target holding its final state (the last call's answer): p50/p95/p99;
- the calls made against the entities changed, and for every run the calls it made (as it
  reported them and as the target received them) against the net changes of the events it
  settled (those marked synced while it ran; runs never overlap), which must be equal; a change
  the run before already sent, having read the row after the change committed, is no net change
  (the run finds the target holding it and counts it as needing no call);
- that nothing was lost: the target equals the database and no event is pending.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/news \\
        .venv/bin/python benchmarks/sync_lag.py --rate 50 --seconds 60

Runs on a throwaway database `<name>_sync_lag`. The last line reads `SUMMARY sync_lag: ...`;
goals p50 <= 0.10 s and p99 <= 0.5 s at 50 changes a second. Exit 1 when a run was not minimal,
calls differ from net changes or something was lost; a lag above its goal is a measurement
(`goals ... BELOW`), not a failure: it moves with the machine.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.lag_checks import (  # noqa: E402
    Key,
    check_runs,
    database_state,
    lags,
    percentile,
    target_state,
)
from benchmarks.support import throwaway_database  # noqa: E402
from testing.processes import database_url  # noqa: E402

GOAL_P50, GOAL_P99 = 0.10, 0.5


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=50.0, help="changes per second")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long to write")
    parser.add_argument("--latency", type=float, default=0.02, help="seconds per target answer")
    parser.add_argument("--concurrency", type=int, default=4, help="the follower's calls at once")
    parser.add_argument("--drain", type=float, default=60.0, help="most seconds to catch up")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    if args.rate <= 0 or args.seconds <= 0 or args.concurrency < 1 or args.latency < 0:
        parser.error("--rate, --seconds and --concurrency must be positive")
    return args


class Workload:
    """Writes through the API and remembers when each entity's last change committed."""

    def __init__(self, api, rng: random.Random) -> None:
        self.api, self.rng = api, rng
        self.posts: list[int] = []
        self.comments: dict[int, int] = {}  # comment -> its post
        self.recent: list[Key] = []
        self.committed: dict[Key, float] = {}
        self.changes = 0

    def change(self, number: int) -> None:
        roll = self.rng.random()
        if roll < 0.25 or not self.posts:
            body = {"title": f"Post {number}", "body": f"Body {number}"}
            self._created("posts", self._call("post", "/news/posts/", body, 201)["id"])
        elif roll < 0.45:
            post = self.rng.choice(self.posts)
            body = {"name": f"Reader {number}", "email": "reader@example.com", "body": "Hi"}
            pk = self._call("post", f"/news/posts/{post}/comments/", body, 201)["id"]
            self.comments[pk] = post
            self._created("comments", pk)
        elif roll < 0.80:
            resource, pk = self._pick_for_edit()
            field = "title" if resource == "posts" else "body"
            self._call("patch", f"/news/{resource}/{pk}/", {field: f"Edit {number}"}, 200)
            self._committed((resource, pk))
        elif roll < 0.90 and self.comments:
            pk = self.rng.choice(list(self.comments))
            self._call("delete", f"/news/comments/{pk}/", None, 204)
            del self.comments[pk]
            self._committed(("comments", pk))
        else:
            post = self.posts.pop(self.rng.randrange(len(self.posts)))
            self._call("delete", f"/news/posts/{post}/", None, 204)
            self._committed(("posts", post))
            for pk in [c for c, parent in self.comments.items() if parent == post]:
                del self.comments[pk]  # deleted with their post, in the same transaction
                self._committed(("comments", pk))
        self.changes += 1

    def _pick_for_edit(self) -> Key:
        alive = [k for k in self.recent[-20:] if self._alive(k)]
        if alive and self.rng.random() < 0.5:
            return self.rng.choice(alive)
        if self.comments and self.rng.random() < 0.4:
            return ("comments", self.rng.choice(list(self.comments)))
        return ("posts", self.rng.choice(self.posts))

    def _alive(self, key: Key) -> bool:
        return key[1] in (self.posts if key[0] == "posts" else self.comments)

    def _created(self, resource: str, pk: int) -> None:
        if resource == "posts":
            self.posts.append(pk)
        self.recent.append((resource, pk))
        self._committed((resource, pk))

    def _committed(self, key: Key) -> None:
        self.committed[key] = time.time()

    def _call(self, method: str, url: str, data: dict | None, expected: int) -> dict:
        response = getattr(self.api, method)(url, data, format="json")
        if response.status_code != expected:
            raise SystemExit(f"{method.upper()} {url} answered {response.status_code}")
        return response.data if expected != 204 else {}


def start_follower(url: str, concurrency: int) -> tuple[subprocess.Popen, list[str]]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "DJANGO_SECRET_KEY": os.environ["DJANGO_SECRET_KEY"],
        "PYTHONUNBUFFERED": "1",
    }
    command = [sys.executable, "manage.py", "sync_changes", "--follow", "--url", url]
    command += ["--max-rps", "0", "--concurrency", str(concurrency)]
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True).start()
    deadline = time.monotonic() + 60
    while not any(line.startswith("Following changes") for line in lines):
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("the follower did not start:\n" + "".join(lines))
        time.sleep(0.05)
    return process, lines


def benchmark(args: argparse.Namespace) -> int:
    from django.contrib.auth import get_user_model
    from django.utils import timezone
    from rest_framework.test import APIClient

    from fake_target import FakeTarget
    from sync.models import ModelEvent

    user = get_user_model().objects.create_user("lag-bench", password="bench-pass-1")
    api = APIClient()
    api.force_authenticate(user)
    workload = Workload(api, random.Random(args.seed))
    started_at = timezone.now()

    with FakeTarget(latency=args.latency) as target:
        follower, output = start_follower(target.url, args.concurrency)
        try:
            total = int(args.rate * args.seconds)
            begin = time.monotonic()
            for number in range(total):
                pause = begin + number / args.rate - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                workload.change(number)
            wrote_for = time.monotonic() - begin
            deadline = time.monotonic() + args.drain
            while ModelEvent.objects.pending().exists() and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            follower.send_signal(signal.SIGTERM)
            exit_code = follower.wait(60)
        sorted_lags, late = lags(target, workload.committed)
        calls = sum(1 for request in target.calls() if request.is_write)
        equal = target_state(target) == database_state()
        runs, stray = check_runs(started_at, target)

    pending = ModelEvent.objects.pending().count()
    p50, p95, p99 = (percentile(sorted_lags, share) for share in (0.50, 0.95, 0.99))
    lost = bool(pending or late or not equal or stray)
    not_minimal = [run for run in runs if not run.minimal]
    net = sum(run.net - run.unchanged for run in runs)
    unchanged = sum(run.unchanged for run in runs)
    rate = workload.changes / wrote_for
    print(
        f"wrote {workload.changes} changes through the API in {wrote_for:.1f} s ({rate:.1f}/s) "
        f"to {len(workload.committed)} entities; target latency {args.latency * 1000:.0f} ms, "
        f"follower concurrency {args.concurrency}"
    )
    print(
        f"lag, commit to the target holding the final state, over {len(sorted_lags)} entities: "
        f"p50 {p50:.3f} s, p95 {p95:.3f} s, p99 {p99:.3f} s, max {percentile(sorted_lags, 1):.3f} s"
    )
    print(
        f"calls: {calls} for {len(workload.committed)} entities changed "
        f"({len(workload.committed) - len(sorted_lags) - late} created and deleted before a run "
        f"saw them: no call); net changes of the runs: {net}"
    )
    mean_run = sum(run.finished - run.started for run in runs) / max(1, len(runs))
    print(
        f"runs: {len(runs)}, {mean_run:.3f} s on average; runs whose calls (as reported and as "
        f"the target received them) differ from their net changes, or that wrote an entity "
        f"twice: {len(not_minimal)}; changes already on the target (sent by the run before, "
        f"which read the row after they committed): {unchanged}"
    )
    for run in not_minimal[:5]:
        print(f"  not minimal: {run}")
    print(
        f"nothing lost: target equals database {equal}, events pending {pending}, entities "
        f"whose last change came after their last call {late}, events outside any run {stray}; "
        f"follower exit code {exit_code}"
    )
    correct = not not_minimal and calls == net and not lost
    fast = p50 <= GOAL_P50 and p99 <= GOAL_P99
    print(
        f"SUMMARY sync_lag: {workload.changes} changes at {rate:.1f}/s for {wrote_for:.0f} s on "
        f"PostgreSQL: lag p50 {p50:.2f} s, p95 {p95:.2f} s, p99 {p99:.2f} s; {calls} calls = "
        f"{net} net changes for {len(workload.committed)} entities changed, over {len(runs)} "
        f"runs ({'each run minimal' if not not_minimal else f'{len(not_minimal)} NOT minimal'}); "
        f"{'nothing lost' if not lost else 'LOST CHANGES'}; goals p50 <= {GOAL_P50:g} s, "
        f"p99 <= {GOAL_P99:g} s: {'PASS' if fast else 'BELOW'}"
    )
    if exit_code != 0:
        print("".join(output[-20:]))
    return 0 if correct and exit_code == 0 else 1


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    with throwaway_database("sync_lag"):
        code = benchmark(args)
    sys.exit(code)


if __name__ == "__main__":
    main()
