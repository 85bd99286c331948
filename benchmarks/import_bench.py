"""How fast and how lean is import_initial_data? Prints rows per second and peak memory.

    .venv/bin/python -m benchmarks.import_bench [--sizes 100 20000] [--server URL] [--keep]

--server is a PostgreSQL URL (its database name is ignored); by default the server of
DATABASE_URL, else postgres://postgres@127.0.0.1:5432.

For each N it serves N posts and 5N comments from an in-process fake target, empties a
throwaway PostgreSQL database (news_import_bench, created and dropped here) and runs the
import in a child process (Django set up as manage.py does, then the service the command
calls), so the peak memory (ru_maxrss) is the import's own: Django, the downloaded JSON, the
checked rows and the inserts. Goals: 20,000 posts + 100,000 comments in under 10 s, peak
memory under 400 MB.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

from fake_target import FakeTarget
from fake_target.data import generate_dataset

PROJECT = Path(__file__).resolve().parent.parent
DATABASE = "news_import_bench"
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
    parser.add_argument(
        "--server",
        default=_default_server(),
        help="PostgreSQL server (default: the one of DATABASE_URL, else 127.0.0.1:5432)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()

    database_url = _with_database(args.server, DATABASE)
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "DJANGO_SECRET_KEY": "benchmark-only-secret-key",
        "DJANGO_DEBUG": "0",
        "DJANGO_SETTINGS_MODULE": "news_project.settings",
    }
    _recreate_database(args.server)
    try:
        _manage(env, "migrate", "--noinput", "-v", "0")
        print(
            f"{'posts':>8} {'comments':>9} {'download s':>10} {'check s':>8} {'write s':>8} "
            f"{'total s':>8} {'process s':>10} {'rows/s':>8} {'peak MB':>8}  goals"
        )
        for size in args.sizes:
            _bench(size, env, database_url)
    finally:
        if not args.keep:
            _drop_database(args.server)


def _bench(size: int, env: dict[str, str], database_url: str) -> None:
    posts, comments = generate_dataset(size)
    with FakeTarget(posts=posts, comments=comments) as target:
        del posts, comments
        _empty_tables(database_url)
        command = [sys.executable, "-c", CHILD, target.url]
        exit_code, output, wall, peak_kb = _run_measured(command, env)
    if exit_code != 0:
        raise SystemExit(f"import failed for N={size}: {output.strip()}")
    report = json.loads(output.strip().splitlines()[-1])
    counted = _count_rows(database_url)
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


def _run_measured(command: list[str], env: dict[str, str]) -> tuple[int, str, float, int]:
    """Exit code, output, wall seconds and peak RSS (KiB) of a child process."""
    with tempfile.TemporaryFile("w+") as output:
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=PROJECT, env=env, stdout=output, stderr=output)
        # Reap the child ourselves: wait4 gives this child's own resource usage.
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - started
        output.seek(0)
        return process.returncode, output.read(), wall, usage.ru_maxrss


def _manage(env: dict[str, str], *args: str) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=PROJECT, env=env, check=True)


def _default_server() -> str:
    url = os.environ.get("DATABASE_URL", "")
    if url.startswith(("postgres://", "postgresql://")):
        return _with_database(url, "")
    return "postgres://postgres@127.0.0.1:5432"


def _with_database(server_url: str, name: str) -> str:
    parts = urlsplit(server_url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", "", ""))


def _admin_connection(server_url: str) -> psycopg.Connection:
    return psycopg.connect(_with_database(server_url, "postgres"), autocommit=True)


def _recreate_database(server_url: str) -> None:
    with _admin_connection(server_url) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{DATABASE}"')


def _drop_database(server_url: str) -> None:
    with _admin_connection(server_url) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')


def _empty_tables(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as db:
        db.execute("TRUNCATE news_comment, news_post, sync_modelevent RESTART IDENTITY CASCADE")


def _count_rows(database_url: str) -> tuple[int, int]:
    with psycopg.connect(database_url) as db:
        posts = db.execute("SELECT count(*) FROM news_post").fetchone()[0]
        comments = db.execute("SELECT count(*) FROM news_comment").fetchone()[0]
    return posts, comments


if __name__ == "__main__":
    main()
