"""HTTP throughput of the API beside json-server's: the same requests to both, with wrk.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/news \\
        .venv/bin/python benchmarks/api_throughput.py [--rounds 3] [--seconds 10] [--rows [N]]

Generates JSONPlaceholder-shaped posts and comments (fake_target.data) into a db.json served by
json-server 0.17.4 (installed with npm into testing/.json-server/ when missing), imports them
from it with import_initial_data into a throwaway database (`<name>_api_throughput`), and starts
the service as documented: `manage.py serve` (granian), DJANGO_DEBUG=0, REDIS_URL
from --redis-url (its database flushed first). Every request is checked by hand on both sides
first; then for each request wrk loads json-server and the service in turn, --rounds times, and
the table gives the medians of req/s and p99. Goals: for reads, the service's req/s at least
json-server's (twice it for reads with a token) with a p99 no worse; for the create, its req/s
at least json-server's.

--rows N measures instead what a page of comments (/news/comments/?page=2) costs at 1,000
comments and at N, the extra comments written with SQL, the read cache off (no REDIS_URL).
Goal: the cost (1/req/s) at N at most 2x the cost at 1,000.

The last line reads `SUMMARY api_throughput...`. Exit 0 when a goal is missed (this is a
measurement); 1 when something failed to run, any non-2xx answer under wrk included.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import servers, wrk  # noqa: E402
from benchmarks.answers import check_create, check_read  # noqa: E402
from benchmarks.support import throwaway_database  # noqa: E402
from testing.processes import database_url  # noqa: E402

SECRET_KEY = "api-throughput-benchmark-only-secret-key-never-used-anywhere-else-0123456789"
SIDES = ("json-server", "service")
WARM_UP_SECONDS = 2.0
SCALE_PATH, SCALE_BASE, SCALE_GOAL = "/news/comments/?page=2", 1_000, 2.0
NEW_POST = {
    "title": "what a benchmark posts",
    "body": "quia et suscipit\nsuscipit recusandae consequuntur expedita et cum\n"
    "reprehenderit molestiae ut ut quas totam\nnostrum rerum est autem sunt rem eveniet",
}


@dataclass(frozen=True)
class Request:
    label: str
    json_server: str  # its path on json-server
    service: str  # and on the service
    write: bool = False
    token: bool = False  # sent with the service's access token (json-server ignores it)

    @property
    def goal(self) -> float:
        """The least req/s of the service, as a multiple of json-server's."""
        return 2.0 if self.token else 1.0


REQUESTS = (
    Request("one post", "/posts/1", "/news/posts/1/"),
    Request("page of 10", "/posts?_page=2&_limit=10", "/news/posts/?page=2&page_size=10"),
    Request("all posts", "/posts", "/news/posts/?all=true"),
    Request("all comments", "/comments", "/news/comments/?all=true"),
    Request("post's comments", "/posts/1/comments", "/news/posts/1/comments/"),
    Request("one post, with a token", "/posts/1", "/news/posts/1/", token=True),
    Request(
        "page of 10, with a token",
        "/posts?_page=2&_limit=10",
        "/news/posts/?page=2&page_size=10",
        token=True,
    ),
    Request("all posts, with a token", "/posts", "/news/posts/?all=true", token=True),
    Request("create post", "/posts", "/news/posts/", write=True),
)


@dataclass(frozen=True)
class Row:
    request: Request
    size: dict[str, int]  # bytes of one answer's body, by side
    runs: dict[str, list[wrk.WrkRun]]

    def rate(self, side: str) -> float:
        return statistics.median(run.requests_per_second for run in self.runs[side])

    def p99(self, side: str) -> float:
        return statistics.median(run.p99_ms for run in self.runs[side])

    @property
    def ratio(self) -> float:
        return self.rate("service") / self.rate("json-server")

    @property
    def met(self) -> bool:
        p99_no_worse = self.request.write or self.p99("service") <= self.p99("json-server")
        return self.ratio >= self.request.goal and p99_no_worse


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="measured runs per side (>= 2)")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each wrk run")
    parser.add_argument("--posts", type=int, default=100, help="posts to serve")
    parser.add_argument("--comments-per-post", type=int, default=5, help="comments of each post")
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15"),
        help="REDIS_URL of the service (its database is flushed first; default BENCH_REDIS_URL, "
        "else database 15 on 127.0.0.1:6379); empty: none",
    )
    parser.add_argument(
        "--rows",
        type=int,
        nargs="?",
        const=1_000_000,
        metavar="N",
        help=f"instead: a page of comments at {SCALE_BASE:,} and at N comments (N: 1,000,000)",
    )
    args = parser.parse_args(argv)
    if args.rounds < 2 or args.seconds < 1 or args.posts < 2 or args.comments_per_post < 1:
        parser.error("--rounds at least 2, --seconds at least 1, --posts at least 2")
    if args.rows is not None and args.rows <= max(SCALE_BASE, args.posts * args.comments_per_post):
        parser.error(f"--rows must be more than {SCALE_BASE:,} and than the comments served")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)  # progress shows as it comes, piped too
    servers.require("wrk", "apt-get install wrk")
    servers.json_server_executable()  # installed now, before anything is started
    # The service checks the token made here with its own key: one key for both.
    os.environ["DJANGO_SECRET_KEY"] = SECRET_KEY
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        with (
            tempfile.TemporaryDirectory(prefix="api_throughput_") as work_dir,
            throwaway_database("api_throughput"),
        ):
            code = benchmark(args, Path(work_dir))
    except KeyboardInterrupt:
        raise SystemExit("interrupted: servers stopped, throwaway database dropped") from None
    sys.exit(code)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def benchmark(args: argparse.Namespace, work_dir: Path) -> int:
    from fake_target.data import generate_dataset

    posts, comments = generate_dataset(args.posts, comments_per_post=args.comments_per_post)
    db_json = work_dir / "db.json"
    db_json.write_text(json.dumps({"posts": posts, "comments": comments}))
    with ExitStack() as stack:
        log = work_dir / "json-server.log"
        target = stack.enter_context(servers.json_server(db_json, log=log, env=dict(os.environ)))
        env = service_env(None)
        servers.manage("migrate", "--noinput", env=env)
        imported = servers.manage("import_initial_data", "--url", target.url, env=env)
        print(f"json-server {servers.JSON_SERVER_VERSION} at {target.url}: {imported.strip()}")
        # The scale measurement runs without the read cache: every read reaches the database.
        redis_url = (args.redis_url or None) if args.rows is None else None
        if redis_url:
            servers.flush_redis(redis_url)
        log = work_dir / "service.log"
        service = stack.enter_context(servers.service(log=log, env=service_env(redis_url)))
        print(f"the service at {service.url} (REDIS_URL={redis_url or 'unset'})")
        if args.rows is not None:
            return scale(args, service)
        return compare(args, target, service, work_dir)


def service_env(redis_url: str | None) -> dict[str, str]:
    env = {
        **os.environ,
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": SECRET_KEY,
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "DATABASE_URL": database_url(),
        # A developer's .env must not change what is measured.
        "DJANGO_ENV_FILE": "",
    }
    env.pop("REDIS_URL", None)
    if redis_url:
        env["REDIS_URL"] = redis_url
    return env


def access_token() -> str:
    """A JWT for the creates, made here on the service's database: /api/token/ is throttled."""
    from datetime import timedelta

    from django.contrib.auth import get_user_model
    from rest_framework_simplejwt.tokens import RefreshToken

    user = get_user_model().objects.create_user("api-bench", password="api-bench-password-0123")
    token = RefreshToken.for_user(user).access_token
    token.set_exp(lifetime=timedelta(days=1))  # outlives any --rounds and --seconds
    return str(token)


def compare(args, target: servers.Server, service: servers.Server, work_dir: Path) -> int:
    running = {"json-server": target, "service": service}
    json_type = {"Content-Type": "application/json"}
    token = access_token()
    headers = {
        "json-server": json_type,
        "service": {**json_type, "Authorization": f"Bearer {token}"},
    }
    bodies = {"json-server": json.dumps({**NEW_POST, "userId": 1}), "service": json.dumps(NEW_POST)}
    create = {
        side: wrk.post_script(
            work_dir / f"create-{side}.lua", body=bodies[side], headers=headers[side]
        )
        for side in SIDES
    }
    bearer = {"Authorization": f"Bearer {token}"}
    with_token = {
        side: wrk.get_script(work_dir / f"token-{side}.lua", headers=bearer) for side in SIDES
    }
    urls = {
        request: {side: running[side].url + path_of(request, side) for side in SIDES}
        for request in REQUESTS
    }
    sizes = {  # each kind by hand first: wrk would count an error as an answer
        request: check_create(urls[request], bodies=bodies, headers=headers)
        if request.write
        else check_read(urls[request], headers=bearer if request.token else None)
        for request in REQUESTS
    }
    rows = []
    for request in REQUESTS:
        script = create if request.write else with_token if request.token else dict.fromkeys(SIDES)
        for side in SIDES:
            measured(
                request.label, running[side], urls[request][side], WARM_UP_SECONDS, script[side]
            )
        runs = {side: [] for side in SIDES}
        for _ in range(args.rounds):
            for side in SIDES:  # alternating, so that both meet the same machine
                url = urls[request][side]
                runs[side].append(
                    measured(request.label, running[side], url, args.seconds, script[side])
                )
        rows.append(Row(request, sizes[request], runs))
        print(f"{request.label}: " + "; ".join(f"{side} {rates(runs[side])}" for side in SIDES))
    print_comparison(rows, args)
    return 0


def rates(runs: list[wrk.WrkRun]) -> str:
    return " ".join(f"{run.requests_per_second:,.0f}" for run in runs) + " req/s"


def path_of(request: Request, side: str) -> str:
    return request.json_server if side == "json-server" else request.service


def measured(
    label: str, server: servers.Server, url: str, seconds: float, script: Path | None = None
) -> wrk.WrkRun:
    """One wrk run; exits when it measured errors (a non-2xx answer, a socket error)."""
    run = wrk.run(url, seconds=seconds, script=script)
    if failure := run.failure():
        raise SystemExit(
            f"{label}, {server.name} ({url}): {failure}\n"
            f"{server.name}'s last lines:\n{servers.tail(server.log, 10)}"
        )
    return run


def print_comparison(rows: list[Row], args) -> None:
    print()
    print(
        "| request | json-server req/s | service req/s | ratio | json-server p99 | service p99 "
        "| bytes (json-server / service) | goal |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for row in rows:
        print(
            f"| {row.request.label} | {row.rate('json-server'):,.0f} | {row.rate('service'):,.0f} "
            f"| {row.ratio:.2f}x | {row.p99('json-server'):.1f} ms | {row.p99('service'):.1f} ms "
            f"| {row.size['json-server']:,} / {row.size['service']:,} "
            f"| {row.request.goal:g}x: {'PASS' if row.met else 'BELOW'} |"
        )
    reads = [row for row in rows if not row.request.write]
    writes = [row for row in rows if row.request.write]
    ratios = ", ".join(f"{row.request.label} {row.ratio:.2f}x" for row in rows)
    run = " ".join(wrk.command("URL", seconds=args.seconds)[:4])
    met_reads = sum(row.met for row in reads)
    print(
        f"SUMMARY api_throughput: {ratios} (median of {args.rounds} rounds, {run}); "
        f"reads >= 1.0x (with a token 2.0x) with p99 no worse: {met_reads} of {len(reads)} met, "
        f"{'PASS' if met_reads == len(reads) else 'BELOW'}; "
        f"writes >= 1.0x: {'PASS' if all(row.met for row in writes) else 'BELOW'}"
    )


def scale(args, service: servers.Server) -> int:
    from news.models import Comment

    url = service.url + SCALE_PATH
    base = max(SCALE_BASE, Comment.objects.count())
    results = []
    for size in (base, args.rows):
        if added := size - Comment.objects.count():
            print(f"adding {added:,} comments with SQL ...")
            add_comments(added)
        check_read({"service": url})
        label = f"page at {size:,} comments"
        measured(label, service, url, WARM_UP_SECONDS)
        runs = [measured(label, service, url, args.seconds) for _ in range(args.rounds)]
        results.append((size, runs))
        print(f"{label}: {rates(runs)}")
    print()
    print("| comments | req/s | p50 | p99 | cost (1/req/s) |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    costs = []
    for size, runs in results:
        rate = statistics.median(run.requests_per_second for run in runs)
        p50 = statistics.median(run.p50_ms for run in runs)
        p99 = statistics.median(run.p99_ms for run in runs)
        costs.append(1 / rate)
        print(f"| {size:,} | {rate:,.0f} | {p50:.1f} ms | {p99:.1f} ms | {1000 / rate:.2f} ms |")
    ratio = costs[1] / costs[0]
    print(
        f"SUMMARY api_throughput --rows: page read at {args.rows:,} comments costs {ratio:.2f}x "
        f"what it does at {base:,} (goal <= {SCALE_GOAL:g}x: "
        f"{'PASS' if ratio <= SCALE_GOAL else 'BELOW'}; median of {args.rounds} rounds, "
        f"{' '.join(wrk.command('URL', seconds=args.seconds)[:4])}, no read cache)"
    )
    return 0


def add_comments(count: int) -> None:
    """`count` more comments: copies of those there, on the same posts, in one INSERT ... SELECT.

    Ids come from the table's own identity sequence, so the service's next create follows on;
    no change event is written (nothing here is to be synced). VACUUM ANALYZE then leaves the
    table as autovacuum would after a while: fresh statistics and visibility map.
    """
    from django.db import connection

    from news.models import Comment

    table = connection.ops.quote_name(Comment._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO {table} (post_id, name, email, body, created_at, updated_at)
            SELECT source.post_id, source.name, source.email, source.body, now(), now()
            FROM generate_series(0, %s - 1) AS g
            JOIN (
                SELECT row_number() OVER (ORDER BY id) - 1 AS n, post_id, name, email, body
                FROM {table}
            ) AS source ON source.n = g %% (SELECT count(*) FROM {table})
            """,
            [count],
        )
        cursor.execute(f"VACUUM ANALYZE {table}")


if __name__ == "__main__":
    main()
