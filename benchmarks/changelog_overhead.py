"""What the change log costs an API write: the same requests with recording on and off.

Creates and updates N posts and N comments through the API test client (4N requests per run,
each in its own transaction as in production), alternately with recording on and switched off,
on a throwaway PostgreSQL database (`<name>_bench`, created, migrated and dropped here), and
prints both timings and their ratio. Usage:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/news \\
        .venv/bin/python benchmarks/changelog_overhead.py --n 500
"""

import argparse
import os
import statistics
import sys
import time
from contextlib import nullcontext
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "news_project.settings")
os.environ.setdefault("DJANGO_SECRET_KEY", "benchmark-only-insecure-key")

TARGET_RATIO = 1.15


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500, help="posts and comments per run")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per mode")
    args = parser.parse_args(argv)
    if args.n < 1 or args.rounds < 1:
        parser.error("--n and --rounds must be at least 1")
    return args


def run_workload(client, n: int) -> None:
    """Create N posts, update each, create one comment per post, update each comment."""

    def call(method: str, url: str, data: dict, expected: int) -> dict:
        response = getattr(client, method)(url, data, format="json")
        if response.status_code != expected:
            status = response.status_code
            raise SystemExit(f"{method.upper()} {url} answered {status}: {response.data}")
        return response.data

    posts = [
        call("post", "/news/posts/", {"title": f"Post {i}", "body": "Body " * 20}, 201)["id"]
        for i in range(n)
    ]
    for post_id in posts:
        call("patch", f"/news/posts/{post_id}/", {"body": "Edited " * 20}, 200)
    comments = [
        call(
            "post",
            "/news/comments/",
            {"post_id": post_id, "name": "Reader", "email": "reader@example.com", "body": "Hi"},
            201,
        )["id"]
        for post_id in posts
    ]
    for comment_id in comments:
        call("patch", f"/news/comments/{comment_id}/", {"body": "Edited"}, 200)


def timed_run(client, n: int, *, recording: bool) -> float:
    from django.db import connection

    from sync.models import ModelEvent
    from sync.recording import recording_disabled

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE news_comment, news_post, sync_modelevent RESTART IDENTITY")
    started = time.perf_counter()
    with nullcontext() if recording else recording_disabled():
        run_workload(client, n)
    elapsed = time.perf_counter() - started
    expected_events = 4 * n if recording else 0
    if (logged := ModelEvent.objects.count()) != expected_events:
        raise SystemExit(f"expected {expected_events} events, found {logged}")
    return elapsed


def benchmark(n: int, rounds: int) -> None:
    from django.contrib.auth import get_user_model
    from rest_framework.test import APIClient

    user = get_user_model().objects.create_user("benchmark", password="benchmark-password-1")
    client = APIClient()
    client.force_authenticate(user)

    print(f"N={n}: {n} posts and {n} comments created and updated through the API")
    print(f"({4 * n} requests per run), {rounds} rounds, order alternating; one warm-up run each.")
    timed_run(client, min(n, 50), recording=True)
    timed_run(client, min(n, 50), recording=False)
    on: list[float] = []
    off: list[float] = []
    for round_number in range(1, rounds + 1):
        order = (True, False) if round_number % 2 else (False, True)
        for recording in order:
            (on if recording else off).append(timed_run(client, n, recording=recording))
        print(
            f"round {round_number}: recording on {on[-1]:.3f}s, off {off[-1]:.3f}s, "
            f"ratio {on[-1] / off[-1]:.3f}x"
        )

    on_median, off_median = statistics.median(on), statistics.median(off)
    ratio = statistics.median(a / b for a, b in zip(on, off, strict=True))
    per_request = 1000 / (4 * n)
    print(
        f"median: recording on {on_median:.3f}s ({on_median * per_request:.2f} ms/request), "
        f"off {off_median:.3f}s ({off_median * per_request:.2f} ms/request)"
    )
    verdict = "met" if ratio <= TARGET_RATIO else "NOT met"
    print(
        f"SUMMARY changelog overhead {ratio:.3f}x (median of {rounds} paired rounds, N={n}, "
        f"on {on_median:.3f}s vs off {off_median:.3f}s): target <= {TARGET_RATIO}x {verdict}"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    import django
    from django.conf import settings

    database = settings.DATABASES["default"]
    if database["ENGINE"] != "django.db.backends.postgresql":
        print("DATABASE_URL must point at PostgreSQL (postgres://...)", file=sys.stderr)
        return 2
    # A database of its own, created and dropped here: it never touches the named one.
    database["TEST"] = {"NAME": f"{database['NAME']}_bench"}
    django.setup()

    from django.test.utils import (
        setup_databases,
        setup_test_environment,
        teardown_databases,
        teardown_test_environment,
    )

    setup_test_environment(debug=False)
    old_config = setup_databases(verbosity=0, interactive=False)
    try:
        benchmark(args.n, args.rounds)
    finally:
        teardown_databases(old_config, verbosity=0)
        teardown_test_environment()
    return 0


if __name__ == "__main__":
    sys.exit(main())
