"""HTTP throughput of the API beside json-server's and beside the machine's floor, with wrk.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/news \\
        .venv/bin/python benchmarks/api_throughput.py [--rounds 3] [--seconds 10] [--no-redis]

Generates JSONPlaceholder-shaped posts and comments (fake_target.data) into a db.json served by
json-server 0.17.4 (installed with npm into testing/.json-server/ when missing), imports them
from it with import_initial_data into a throwaway database (`<name>_api_throughput`), and starts
the service as documented: `manage.py serve` (granian), DJANGO_DEBUG=0, REDIS_URL from
--redis-url (its database flushed first; none with --no-redis). Beside them runs the *floor*
(benchmarks/floor.py): a bare WSGI application under granian with the service's 2 workers of 4
threads, answering the service's own bytes from memory, and doing a create as one psycopg
transaction that inserts the post and its change-log row.

Every request is checked by hand on each side first; then wrk loads json-server, the service and
the floor in turn, --rounds times, and the table gives the medians of req/s and p99. Writes are
sent with the service's access token: a create, a full update (PUT) and a delete of posts and
of comments; the updates and deletes go to the items the creates made (topped up first when
they are too few to last the runs).

Goals, each side by side in this one run:
- anonymous reads: at least json-server's req/s with a p99 no worse, and at least 0.25x the
  floor's (with the read cache; --no-redis: json-server's only);
- reads with a token: twice json-server's req/s with a p99 no worse (--no-redis: json-server's);
- writes with a token: twice json-server's req/s, and at least 0.33x the floor's create
  (--no-redis measures reads only).

--rows N measures instead what a page of comments (/news/comments/?page=2) costs at 1,000
comments and at N, the extra comments written with SQL, every cache off (no REDIS_URL,
NEWS_SNAPSHOT_CACHE=0).
Goal: the cost (1/req/s) at N at most 2x the cost at 1,000.

The last line reads `SUMMARY api_throughput...`. Exit 0 when a goal is missed (this is a
measurement); 1 when something failed to run, any non-2xx answer under wrk included.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import statistics
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import servers, wrk  # noqa: E402
from benchmarks.answers import check_read, check_write, fetch  # noqa: E402
from benchmarks.support import throwaway_database  # noqa: E402
from testing.processes import database_url  # noqa: E402

SECRET_KEY = "api-throughput-benchmark-only-secret-key-never-used-anywhere-else-0123456789"
SIDES = ("json-server", "service")
SCALE_PATH, SCALE_BASE, SCALE_GOAL = "/news/comments/?page=2", 1_000, 2.0
# The least req/s of the service: as a multiple of json-server's, and of the floor's.
READ_GOAL, TOKEN_READ_GOAL, WRITE_GOAL = 1.0, 2.0, 2.0
CACHED_READ_FLOOR_GOAL, WRITE_FLOOR_GOAL = 0.25, 0.33
# Items to delete, as a multiple of what the fastest write of theirs on the side would get
# through in the delete's runs: a delete may be faster still. json-server's are slower than its
# creates (it rewrites db.json, and a post's delete looks for its comments), and every item more
# it holds makes each of its writes slower: its margin is small.
POOL_MARGIN = {"json-server": 1.2, "service": 2.0}
BODY = (
    "quia et suscipit\nsuscipit recusandae consequuntur expedita et cum\n"
    "reprehenderit molestiae ut ut quas totam\nnostrum rerum est autem sunt rem eveniet"
)
# What each write sends, by resource and side: json-server names the post and user in camelCase.
SENT = {
    "posts": {
        "json-server": {"userId": 1, "title": "what a benchmark posts", "body": BODY},
        "service": {"title": "what a benchmark posts", "body": BODY},
    },
    "comments": {
        "json-server": {"postId": 1, "name": "a benchmark", "email": "b@example.com", "body": BODY},
        "service": {"post_id": 1, "name": "a benchmark", "email": "b@example.com", "body": BODY},
    },
}
UPDATED = {
    "posts": {"title": "what a benchmark changed", "body": BODY},
    "comments": {"name": "a benchmark changed", "email": "c@example.com", "body": BODY},
}
# A method's expected status, and the write's name in the table.
WRITES = {"POST": (201, "create"), "PUT": (200, "update"), "DELETE": (204, "delete")}


@dataclass(frozen=True)
class Request:
    label: str
    json_server: str  # its path on json-server
    service: str  # and on the service (and the floor)
    method: str = "GET"
    token: bool = False  # sent with the service's access token (json-server ignores it)
    resource: str = "posts"

    @property
    def write(self) -> bool:
        return self.method != "GET"

    def goal(self, cached: bool) -> float:
        """The least req/s of the service, as a multiple of json-server's."""
        if self.write:
            return WRITE_GOAL
        return TOKEN_READ_GOAL if self.token and cached else READ_GOAL

    def floor_goal(self, cached: bool) -> float | None:
        """The least req/s of the service as a multiple of the floor's, if it has one."""
        if self.write:
            return WRITE_FLOOR_GOAL
        return CACHED_READ_FLOOR_GOAL if cached and not self.token else None


def _writes(resource: str, one: str) -> tuple[Request, ...]:
    json_server, service = f"/{resource}", f"/news/{resource}/"
    return (
        Request(f"create {one}", json_server, service, "POST", True, resource),
        Request(f"update {one} (PUT)", json_server, service, "PUT", True, resource),
        Request(f"delete {one}", json_server, service, "DELETE", True, resource),
    )


READS = (
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
)
WRITE_REQUESTS = _writes("posts", "post") + _writes("comments", "comment")
# The floor's write: a create of a post, which every write is held against.
FLOOR_WRITE = WRITE_REQUESTS[0]


@dataclass(frozen=True)
class Row:
    request: Request
    size: dict[str, int]  # bytes of one answer's body, by side
    runs: dict[str, list[wrk.WrkRun]]  # by side: json-server, service, floor
    floor_rate: float | None  # the floor's median req/s (a write's: the floor's create)
    cached: bool  # the service ran with the read cache

    def rate(self, side: str) -> float:
        return statistics.median(run.requests_per_second for run in self.runs[side])

    def p99(self, side: str) -> float:
        return statistics.median(run.p99_ms for run in self.runs[side])

    @property
    def ratio(self) -> float:
        return self.rate("service") / self.rate("json-server")

    @property
    def of_floor(self) -> float | None:
        return self.rate("service") / self.floor_rate if self.floor_rate else None

    @property
    def met(self) -> bool:
        p99_no_worse = self.request.write or self.p99("service") <= self.p99("json-server")
        floor_goal = self.request.floor_goal(self.cached)
        floor_met = floor_goal is None or (self.of_floor or 0) >= floor_goal
        return self.ratio >= self.request.goal(self.cached) and p99_no_worse and floor_met

    def goals(self) -> str:
        said = f"{self.request.goal(self.cached):g}x"
        if (floor_goal := self.request.floor_goal(self.cached)) is not None:
            said += f", {floor_goal:g}x floor"
        return said


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="measured runs per side (>= 2)")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each wrk run")
    parser.add_argument(
        "--warm-up",
        type=int,
        default=2,
        help="seconds of load before each request's rounds (0: none)",
    )
    parser.add_argument("--posts", type=int, default=100, help="posts to serve")
    parser.add_argument("--comments-per-post", type=int, default=5, help="comments of each post")
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15"),
        help="REDIS_URL of the service (its database is flushed first; default BENCH_REDIS_URL, "
        "else database 15 on 127.0.0.1:6379); empty: none",
    )
    parser.add_argument(
        "--no-redis",
        action="store_true",
        help="the service without Redis (its documented fallback: each worker keeps answers "
        "under the database's snapshot): reads only",
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
    if args.warm_up < 0:
        parser.error("--warm-up must be 0 or more")
    if args.rows is not None and args.rows <= max(SCALE_BASE, args.posts * args.comments_per_post):
        parser.error(f"--rows must be more than {SCALE_BASE:,} and than the comments served")
    if args.no_redis:
        args.redis_url = ""
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
        # The scale measurement runs without any cache: every read reaches the database.
        redis_url = (args.redis_url or None) if args.rows is None else None
        if redis_url:
            servers.flush_redis(redis_url)
        log = work_dir / "service.log"
        env = service_env(redis_url, keep=args.rows is None)
        service = stack.enter_context(servers.service(log=log, env=env))
        print(f"the service at {service.url} (REDIS_URL={redis_url or 'unset'})")
        if args.rows is not None:
            return scale(args, service)
        bodies = work_dir / "floor-bodies.json"
        bodies.write_text(json.dumps(floor_bodies(service)))
        log = work_dir / "floor.log"
        floor = stack.enter_context(
            servers.floor(bodies=bodies, database_url=database_url(), log=log, env=os.environ)
        )
        print(f"the floor at {floor.url} (benchmarks/floor.py)")
        running = {"json-server": target, "service": service, "floor": floor}
        return compare(args, running, work_dir, cached=redis_url is not None)


def service_env(redis_url: str | None, *, keep: bool = True) -> dict[str, str]:
    """The service's environment: Redis at `redis_url` (None: none); without Redis, each worker
    keeps answers under the database's snapshot unless `keep` is false."""
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
    env["NEWS_SNAPSHOT_CACHE"] = "1" if keep else "0"
    return env


def floor_bodies(service: servers.Server) -> dict[str, str]:
    """What the floor answers: the service's own bodies to the reads, by path and query."""
    bodies = {}
    for request in READS:
        url = service.url + request.service
        bodies[request.service] = fetch_text(url)
    return bodies


def fetch_text(url: str) -> str:
    import urllib.request

    with urllib.request.urlopen(url, timeout=30) as response:
        return response.read().decode()


def bench_user():
    """The user whose token the benchmark sends, made here on the service's database."""
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create_user("api-bench", password="api-bench-password-0123")


def access_token(user) -> str:
    """A JWT made here on the service's database: /api/token/ is throttled."""
    from datetime import timedelta

    from rest_framework_simplejwt.tokens import RefreshToken

    token = RefreshToken.for_user(user).access_token
    token.set_exp(lifetime=timedelta(days=1))  # outlives any --rounds and --seconds
    return str(token)


class Items:
    """The items each side's creates made, which the updates and deletes go to."""

    def __init__(self, running: dict[str, servers.Server], user, first: dict[str, int]) -> None:
        self.running, self.user = running, user
        self.first = first  # by resource: the first id a create may give (ids above the import)

    def ids(self, side: str, resource: str) -> list[int]:
        if side == "json-server":
            url = f"{self.running[side].url}/{resource}?id_gte={self.first[resource]}"
            data, _ = fetch(url)
            return sorted(item["id"] for item in data)
        return sorted(
            self._model(resource).objects.filter(created_by=self.user).values_list("id", flat=True)
        )

    def top_up(self, side: str, resource: str, count: int, headers: dict[str, str]) -> None:
        """`count` more items of the side's: through the API on json-server, in bulk here."""
        if count <= 0:
            return
        print(f"  {side}: {count:,} more {resource} to update and delete ...")
        if side == "service":
            model = self._model(resource)
            fields = {"post_id": 1} if resource == "comments" else {"user_id": 1}
            fields |= {k: v for k, v in SENT[resource][side].items() if k != "post_id"}
            model.objects.bulk_create(
                [model(created_by=self.user, **fields) for _ in range(count)], batch_size=1000
            )
            return
        url = f"{self.running[side].url}/{resource}"
        body = json.dumps(SENT[resource][side])

        def create(_):
            fetch(url, method="POST", body=body, headers=headers, expected=201)

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(create, range(count)))

    @staticmethod
    def _model(resource: str):
        from news.models import Comment, Post

        return Post if resource == "posts" else Comment


def compare(args, running: dict[str, servers.Server], work_dir: Path, *, cached: bool) -> int:
    from news.models import Comment, Post

    user = bench_user()
    token = access_token(user)
    json_type = {"Content-Type": "application/json"}
    bearer = {"Authorization": f"Bearer {token}"}
    headers = {"json-server": json_type, "service": {**json_type, **bearer}, "floor": json_type}
    first = {
        "posts": (Post.objects.order_by("-id").values_list("id", flat=True).first() or 0) + 1,
        "comments": (Comment.objects.order_by("-id").values_list("id", flat=True).first() or 0) + 1,
    }
    items = Items(running, user, first)
    requests = READS if args.no_redis else READS + WRITE_REQUESTS
    rows, floor_write = [], None
    # The fastest writes of each side so far, by resource: how many items its deletes may need.
    fastest: dict[tuple[str, str], float] = {}
    for request in requests:
        sides = [*SIDES, "floor"] if (not request.write and not request.token) else list(SIDES)
        if request == FLOOR_WRITE:
            sides.append("floor")
        scripts, size = prepare(request, sides, items, headers, fastest, args, work_dir)
        runs: dict[str, list[wrk.WrkRun]] = {side: [] for side in sides}
        for side in sides if args.warm_up else ():
            url, script = scripts[side]()
            measured(request.label, running[side], url, args.warm_up, script)
        for _ in range(args.rounds):
            for side in sides:  # alternating, so that all meet the same machine
                url, script = scripts[side]()
                runs[side].append(measured(request.label, running[side], url, args.seconds, script))
        if request.write:
            for side in SIDES:
                rate = max(run.requests_per_second for run in runs[side])
                fastest[side, request.resource] = max(
                    rate, fastest.get((side, request.resource), 0)
                )
        if request == FLOOR_WRITE:
            floor_write = statistics.median(run.requests_per_second for run in runs["floor"])
        floor_rate = (
            floor_write
            if request.write
            else statistics.median(r.requests_per_second for r in runs["floor"])
            if "floor" in runs
            else None
        )
        rows.append(Row(request, size, runs, floor_rate, cached))
        print(f"{request.label}: " + "; ".join(f"{side} {rates(runs[side])}" for side in sides))
    print_comparison(rows, args, cached)
    return 0


def prepare(request, sides, items, headers, fastest, args, work_dir):
    """Each side's script maker (a new script each run for a delete: the items still there),
    after one request by hand on each side; and the sizes of the answers."""
    urls = {side: items.running[side].url for side in sides}
    name = (
        request.label.replace(" ", "-")
        .replace("'", "")
        .replace(",", "")
        .replace("(", "")
        .replace(")", "")
    )
    if not request.write:
        script = {
            side: wrk.get_script(
                work_dir / f"{name}-{side}.lua", headers=read_headers(request, side, headers)
            )
            for side in sides
        }
        full = {side: urls[side] + path_of(request, side) for side in sides}
        size = check_read(full, headers=headers["service"] if request.token else None)
        return {side: _constant(full[side], script[side]) for side in sides}, size
    if request.method == "POST":
        bodies = {
            side: json.dumps(SENT[request.resource].get(side, SENT[request.resource]["service"]))
            for side in sides
        }
        full = {side: urls[side] + path_of(request, side) for side in sides}
        size = check_write(full, method="POST", bodies=bodies, headers=headers, expected=201)
        script = {
            side: wrk.post_script(
                work_dir / f"{name}-{side}.lua", body=bodies[side], headers=headers[side]
            )
            for side in sides
        }
        return {side: _constant(full[side], script[side]) for side in sides}, size
    # PUT and DELETE: to the items each side's creates made, topped up to last the runs.
    expected, _ = WRITES[request.method]
    makers, size = {}, {}
    for side in sides:
        ids = items.ids(side, request.resource)
        if request.method == "DELETE":
            seconds = args.warm_up + args.rounds * args.seconds
            wanted = math.ceil(POOL_MARGIN[side] * fastest[side, request.resource] * seconds)
            items.top_up(side, request.resource, wanted - len(ids), headers[side])
            ids = items.ids(side, request.resource)
        if len(ids) < 2:
            raise SystemExit(f"{request.label}, {side}: no items of its own to change")
        body = None
        if request.method == "PUT":
            sent = dict(UPDATED[request.resource])
            if side == "json-server":
                sent |= {k: v for k, v in SENT[request.resource][side].items() if k not in sent}
            body = json.dumps(sent)
        last = f"{items.running[side].url}{item_path(request, side, ids[-1])}"
        size[side] = check_write(
            {side: last},
            method=request.method,
            bodies={side: body},
            headers=headers,
            expected=expected,
        )[side]
        makers[side] = _paths_maker(
            request, side, items, headers[side], body, work_dir / f"{name}-{side}.lua"
        )
    return makers, size


def item_path(request: Request, side: str, item_id: int) -> str:
    return (
        f"/{request.resource}/{item_id}"
        if side == "json-server"
        else f"/news/{request.resource}/{item_id}/"
    )


def read_headers(request: Request, side: str, headers: dict) -> dict[str, str]:
    return {"Authorization": headers["service"]["Authorization"]} if request.token else {}


def _constant(url: str, script: Path):
    return lambda: (url, script)


def _paths_maker(request, side, items, headers, body, script_path):
    def make():
        ids = items.ids(side, request.resource)
        paths = [item_path(request, side, i) for i in ids]
        script = wrk.paths_script(
            script_path, method=request.method, paths=paths, headers=headers, body=body
        )
        return items.running[side].url + paths[0], script

    return make


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


def print_comparison(rows: list[Row], args, cached: bool) -> None:
    print()
    print(
        "| request | json-server req/s | service req/s | ratio | floor req/s | service / floor "
        "| json-server p99 | service p99 | bytes (json-server / service) | goal |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for row in rows:
        floor = f"{row.floor_rate:,.0f}" if row.floor_rate else ""
        of_floor = f"{row.of_floor:.2f}x" if row.of_floor else ""
        print(
            f"| {row.request.label} | {row.rate('json-server'):,.0f} | {row.rate('service'):,.0f} "
            f"| {row.ratio:.2f}x | {floor} | {of_floor} "
            f"| {row.p99('json-server'):.1f} ms | {row.p99('service'):.1f} ms "
            f"| {row.size['json-server']:,} / {row.size['service']:,} "
            f"| {row.goals()}: {'PASS' if row.met else 'BELOW'} |"
        )
    ratios = ", ".join(
        f"{row.request.label} {row.ratio:.2f}x"
        + (f" ({row.of_floor:.2f}x floor)" if row.of_floor else "")
        for row in rows
    )
    run = " ".join(wrk.command("URL", seconds=args.seconds)[:4])
    met = sum(row.met for row in rows)
    without = "" if cached else ", no Redis"
    print(
        f"SUMMARY api_throughput: {ratios} (median of {args.rounds} rounds, {run}{without}); "
        f"goals met: {met} of {len(rows)}, {'PASS' if met == len(rows) else 'BELOW'}"
        + (
            ""
            if met == len(rows)
            else f" (below: {', '.join(r.request.label for r in rows if not r.met)})"
        )
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
        if args.warm_up:
            measured(label, service, url, args.warm_up)
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
