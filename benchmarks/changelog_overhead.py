"""What the change log costs an API write: the same requests with recording on and off.

Creates and updates N posts and N comments through the API test client (4N requests per mode
and round, each in its own transaction as in production), with recording on and switched off
alternating request by request, on a throwaway PostgreSQL database (`<name>_bench`, created,
migrated and dropped here), and prints both timings and their ratio. Usage:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/news \\
        .venv/bin/python benchmarks/changelog_overhead.py --n 500
"""

import argparse
import statistics
import sys
import time
from contextlib import nullcontext
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.support import throwaway_database  # noqa: E402

TARGET_RATIO = 1.15


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500, help="posts and comments per run")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per mode")
    args = parser.parse_args(argv)
    if args.n < 1 or args.rounds < 1:
        parser.error("--n and --rounds must be at least 1")
    return args


def run_round(client, n: int, round_number: int) -> tuple[float, float]:
    """Create N posts, update each, add a comment to each, update each comment: once per mode.

    Every request is made twice in a row, once with recording on and once off (which goes
    first alternates), so both modes meet the same database and machine load. Returns the
    seconds spent in requests with recording on and off.
    """
    from django.db import connection

    from sync.models import ModelEvent
    from sync.recording import recording_disabled

    totals = {True: 0.0, False: 0.0}

    def call(recording: bool, method: str, url: str, data: dict, expected: int) -> dict:
        send = getattr(client, method)
        started = time.perf_counter()
        with nullcontext() if recording else recording_disabled():
            response = send(url, data, format="json")
        totals[recording] += time.perf_counter() - started
        if response.status_code != expected:
            status = response.status_code
            raise SystemExit(f"{method.upper()} {url} answered {status}: {response.data}")
        return response.data

    def modes(i: int) -> tuple[bool, bool]:
        return (True, False) if (i + round_number) % 2 == 0 else (False, True)

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE news_comment, news_post, sync_modelevent RESTART IDENTITY")
    body = "Body " * 20
    posts = [
        {
            rec: call(rec, "post", "/news/posts/", {"title": f"P{i}", "body": body}, 201)["id"]
            for rec in modes(i)
        }
        for i in range(n)
    ]
    for i, ids in enumerate(posts):
        for rec in modes(i):
            call(rec, "patch", f"/news/posts/{ids[rec]}/", {"body": "Edited " * 20}, 200)
    comment = {"name": "Reader", "email": "reader@example.com", "body": "Hi"}
    comments = [
        {
            rec: call(rec, "post", "/news/comments/", {**comment, "post_id": ids[rec]}, 201)["id"]
            for rec in modes(i)
        }
        for i, ids in enumerate(posts)
    ]
    for i, ids in enumerate(comments):
        for rec in modes(i):
            call(rec, "patch", f"/news/comments/{ids[rec]}/", {"body": "Edited"}, 200)

    if (logged := ModelEvent.objects.count()) != 4 * n:
        raise SystemExit(f"expected {4 * n} events (recording on only), found {logged}")
    return totals[True], totals[False]


def benchmark(n: int, rounds: int) -> None:
    from django.contrib.auth import get_user_model
    from rest_framework.test import APIClient

    user = get_user_model().objects.create_user("benchmark", password="benchmark-password-1")
    client = APIClient()
    client.force_authenticate(user)

    requests = 4 * n
    print(
        f"N={n}: {n} posts and {n} comments created then updated through the API, "
        f"{requests} requests per mode and round, recording on and off alternating request by "
        f"request; {rounds} rounds after a warm-up."
    )
    run_round(client, min(n, 50), 0)
    on: list[float] = []
    off: list[float] = []
    for round_number in range(1, rounds + 1):
        seconds_on, seconds_off = run_round(client, n, round_number)
        on.append(seconds_on)
        off.append(seconds_off)
        print(
            f"round {round_number}: recording on {seconds_on:.3f}s, off {seconds_off:.3f}s, "
            f"ratio {seconds_on / seconds_off:.3f}x"
        )

    on_median, off_median = statistics.median(on), statistics.median(off)
    ratio = statistics.median(a / b for a, b in zip(on, off, strict=True))
    ms = 1000 / requests
    print(
        f"median: recording on {on_median:.3f}s ({on_median * ms:.2f} ms/request), "
        f"off {off_median:.3f}s ({off_median * ms:.2f} ms/request)"
    )
    verdict = "met" if ratio <= TARGET_RATIO else "NOT met"
    print(
        f"SUMMARY changelog overhead {ratio:.3f}x (median of {rounds} rounds, N={n}, "
        f"{on_median * ms:.2f} vs {off_median * ms:.2f} ms/request): "
        f"target <= {TARGET_RATIO}x {verdict}"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with throwaway_database("bench"):
        benchmark(args.n, args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
