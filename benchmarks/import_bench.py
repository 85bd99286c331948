"""How fast and how lean is import_initial_data? Prints rows per second and peak memory.

    DATABASE_URL=postgres://... .venv/bin/python -m benchmarks.import_bench [--sizes 100 20000]

For each N it serves N posts and 5N comments from an in-process fake target, empties a
throwaway PostgreSQL database (`<DATABASE_URL's name>_import_bench`, made and dropped by
benchmarks.support) and runs the
import in a child process (Django set up as manage.py does, then the service the command
calls), so the peak memory (ru_maxrss) is the import's own: Django, the downloaded JSON, the
checked rows and the inserts. Goals: 20,000 posts + 100,000 comments in under 10 s, peak
memory under 400 MB.
"""

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.support import run_measured, throwaway_database  # noqa: E402
from fake_target import FakeTarget  # noqa: E402
from fake_target.data import generate_dataset  # noqa: E402
from testing.processes import database_url  # noqa: E402

PROJECT = Path(__file__).resolve().parent.parent
# The child: what `manage.py import_initial_data --url URL` does, reporting every timing.
CHILD = """
import dataclasses, json, sys
import django
django.setup()
from sync.client import TargetApiClient
from sync.importing import import_initial_data
with TargetApiClient(base_url=sys.argv[1], timeout=60) as client:
    report = import_initial_data(client=client)
print(json.dumps(dataclasses.asdict(report)))
"""
GOAL_SECONDS = 10.0
GOAL_MEGABYTES = 400.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 20_000], help="posts (N)")
    args = parser.parse_args()

    with throwaway_database("import_bench"):
        env = {
            **os.environ,
            "DATABASE_URL": database_url(),
            "DJANGO_SECRET_KEY": "benchmark-only-secret-key",
            "DJANGO_DEBUG": "0",
            "DJANGO_SETTINGS_MODULE": "news_project.settings",
        }
        print(
            f"{'posts':>8} {'comments':>9} {'download s':>10} {'check s':>8} {'write s':>8} "
            f"{'total s':>8} {'process s':>10} {'rows/s':>8} {'peak MB':>8}  goals"
        )
        for size in args.sizes:
            _bench(size, env)


def _bench(size: int, env: dict[str, str]) -> None:
    from news.models import Comment, Post
    from sync.recording import recording_disabled

    posts, comments = generate_dataset(size)
    with FakeTarget(posts=posts, comments=comments) as target:
        del posts, comments
        with recording_disabled():
            Post.objects.all().delete()  # and the comments
        command = [sys.executable, "-c", CHILD, target.url]
        measured = run_measured(command, env, PROJECT)
        exit_code, output, wall, peak_kb = (
            measured.exit_code,
            measured.output,
            measured.wall,
            measured.peak_kib,
        )
    if exit_code != 0:
        raise SystemExit(f"import failed for N={size}: {output.strip()}")
    report = json.loads(output.strip().splitlines()[-1])
    counted = (Post.objects.count(), Comment.objects.count())
    if counted != (size, 5 * size):
        raise SystemExit(f"N={size}: the database holds {counted} posts and comments")
    rows = report["posts"] + report["comments"]
    seconds, megabytes = report["seconds"], peak_kb / 1024
    goals = "ok" if seconds < GOAL_SECONDS and megabytes < GOAL_MEGABYTES else "MISSED"
    print(
        f"{report['posts']:>8} {report['comments']:>9} {report['fetch_seconds']:>10.2f} "
        f"{report['check_seconds']:>8.2f} {report['write_seconds']:>8.2f} {seconds:>8.2f} "
        f"{wall:>10.2f} {rows / seconds:>8.0f} {megabytes:>8.0f}  {goals}",
        flush=True,
    )


if __name__ == "__main__":
    main()
