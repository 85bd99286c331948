"""What sync_changes costs against a slow target, next to sending every event one by one.

Builds a synced baseline (posts and comments present locally and on the target), runs a random
workload of M operations through the API test client (create, update and delete posts and
comments), then syncs it to a fake target that answers each call after a fixed latency. The
target serves from a process of its own, as a real one does, so that its threads do not compete
with the sync for this process's interpreter lock. Prints the events, the net changes (entities
whose state differs from the baseline), the calls the target received (must equal the net
changes), the database queries, the wall time and its ratio to the lower bound
`calls x latency / concurrency`; then replays the same events the naive way (one call per event,
one at a time) on a fresh target for comparison. Usage:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/news \\
        .venv/bin/python benchmarks/sync_bench.py --ops 3300 --latency 0.02 --concurrency 8
"""

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.support import target_process, throwaway_database  # noqa: E402

TARGET_RATIO = 1.3


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=3300, help="API operations in the workload")
    parser.add_argument("--baseline", type=int, default=300, help="posts synced beforehand")
    parser.add_argument("--latency", type=float, default=0.02, help="seconds per target answer")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--naive-limit",
        type=int,
        default=0,
        help="replay only the first N events the naive way and extrapolate (0: all)",
    )
    args = parser.parse_args(argv)
    if min(args.ops, args.concurrency) < 1 or args.baseline < 0 or args.latency < 0:
        parser.error("--ops and --concurrency must be at least 1; others not negative")
    return args


def build_baseline(target, posts: int, seed: int) -> None:
    """The same posts and comments locally and on the target, as the initial import leaves it."""
    from fake_target.data import generate_dataset
    from sync.client import TargetApiClient
    from sync.importing import import_initial_data

    records, comments = generate_dataset(posts, comments_per_post=1, seed=seed)
    target.load(posts=records, comments=comments)
    with TargetApiClient(base_url=target.url) as client:
        import_initial_data(client=client)


def run_workload(client, ops: int, rng: random.Random) -> None:
    """Random creates, updates and deletes through the API, as clients would make them."""
    from news.models import Comment, Post

    posts = list(Post.objects.values_list("id", flat=True))
    comments = list(Comment.objects.values_list("id", flat=True))

    def call(method: str, url: str, data: dict | None, expected: int) -> dict:
        response = getattr(client, method)(url, data, format="json")
        if response.status_code != expected:
            raise SystemExit(f"{method.upper()} {url} answered {response.status_code}")
        return response.data if expected != 204 else {}

    for number in range(ops):
        roll = rng.random()
        if roll < 0.30 or not posts:
            body = {"title": f"Post {number}", "body": f"Body {number}\nsecond line"}
            posts.append(call("post", "/news/posts/", body, 201)["id"])
        elif roll < 0.45:
            post = rng.choice(posts)
            call("patch", f"/news/posts/{post}/", {"title": f"Edited {number}"}, 200)
        elif roll < 0.70:
            post = rng.choice(posts)
            body = {"name": f"Reader {number}", "email": "reader@example.com", "body": "Hi\n!"}
            comments.append(call("post", f"/news/posts/{post}/comments/", body, 201)["id"])
        elif roll < 0.85 and comments:
            comment = rng.choice(comments)
            call("patch", f"/news/comments/{comment}/", {"body": f"Edited {number}"}, 200)
        elif roll < 0.93 and comments:
            comment = comments.pop(rng.randrange(len(comments)))
            call("delete", f"/news/comments/{comment}/", None, 204)
        else:
            post = posts.pop(rng.randrange(len(posts)))
            call("delete", f"/news/posts/{post}/", None, 204)
            alive = set(Comment.objects.values_list("id", flat=True))
            comments = [c for c in comments if c in alive]


def local_state() -> dict[str, dict[int, dict]]:
    from news.models import Comment, Post

    return {
        "posts": {
            pk: {"id": pk, "userId": user_id, "title": title, "body": body}
            for pk, user_id, title, body in Post.objects.values_list(
                "id", "user_id", "title", "body"
            )
        },
        "comments": {
            pk: {"id": pk, "postId": post_id, "name": name, "email": email, "body": body}
            for pk, post_id, name, email, body in Comment.objects.values_list(
                "id", "post_id", "name", "email", "body"
            )
        },
    }


def net_changes(before: dict[str, dict[int, dict]], after: dict[str, dict[int, dict]]) -> int:
    """Entities whose state on the target must change: created, changed or deleted."""
    count = 0
    for resource in ("posts", "comments"):
        old, new = before[resource], after[resource]
        count += len(new.keys() - old.keys()) + len(old.keys() - new.keys())
        count += sum(1 for pk in new.keys() & old.keys() if new[pk] != old[pk])
    return count


def naive_replay(events: list[tuple[str, int, str]], state, url: str, limit: int) -> float:
    """One call per event, one at a time, in log order; returns the time for all events."""
    from sync.client import TargetApiClient, TargetApiError

    sample = events[:limit] if limit else events
    started = time.perf_counter()
    with TargetApiClient(base_url=url, retries=0, timeout=10) as client:
        for table, pk, kind in sample:
            resource = "posts" if table == "news_post" else "comments"
            payload = state[resource].get(pk, {"id": pk})
            try:
                if kind == "CREATED":
                    client.create(resource, payload)
                elif kind == "UPDATED":
                    client.update(resource, pk, payload)
                else:
                    client.delete(resource, pk)
            except TargetApiError:
                pass  # the naive way hits entities that are already gone; timing is the point
    elapsed = time.perf_counter() - started
    return elapsed * len(events) / len(sample)


def benchmark(args: argparse.Namespace) -> None:
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from rest_framework.test import APIClient

    from sync.client import TargetApiClient
    from sync.models import ModelEvent
    from sync.syncing import SyncOptions, sync_changes

    rng = random.Random(args.seed)
    staff = get_user_model().objects.create_user("bench", password="bench-pass-1", is_staff=True)
    api = APIClient()
    api.force_authenticate(staff)

    with target_process(latency=args.latency) as target:
        build_baseline(target, args.baseline, args.seed)
        before = local_state()
        run_workload(api, args.ops, rng)
        after = local_state()
        events = list(
            ModelEvent.objects.pending()
            .order_by("id")
            .values_list("entity_table", "entity_pk", "type")
        )
        net = net_changes(before, after)
        target.reset_log()

        with (
            TargetApiClient(base_url=target.url, timeout=10, pool_size=args.concurrency) as client,
            CaptureQueriesContext(connection) as queries,
        ):
            started = time.perf_counter()
            report = sync_changes(client=client, options=SyncOptions(concurrency=args.concurrency))
            wall = time.perf_counter() - started
        calls = len(target.calls())
        equal = {k: {r["id"]: r for r in v} for k, v in target.state().items()} == after

    bound = calls * args.latency / args.concurrency
    print(
        f"workload: {args.ops} API operations on a baseline of {args.baseline} posts and "
        f"{args.baseline} comments; target latency {args.latency * 1000:.0f} ms"
    )
    print(f"events:           {len(events)}")
    print(f"net changes:      {net}")
    print(f"calls made:       {calls}  ({report.summary()})")
    print(f"calls = net:      {'yes' if calls == net else 'NO'}; target equals database: {equal}")
    print(f"database queries: {len(queries)}")
    print(
        f"wall time:        {wall:.2f} s at concurrency {args.concurrency}; "
        f"bound {bound:.2f} s; ratio {wall / bound if bound else 0:.2f}x"
    )

    with target_process(latency=args.latency) as naive_target:
        naive_target.load(
            posts=list(before["posts"].values()), comments=list(before["comments"].values())
        )
        naive = naive_replay(events, after, naive_target.url, args.naive_limit)
    estimated = " (extrapolated)" if args.naive_limit and args.naive_limit < len(events) else ""
    print(f"naive:            {len(events)} calls, one at a time: {naive:.2f} s{estimated}")
    verdict = "met" if calls == net and bound and wall / bound <= TARGET_RATIO else "NOT met"
    print(
        f"SUMMARY sync: {net} net changes from {len(events)} events in {calls} calls, "
        f"{wall:.2f} s = {wall / bound if bound else 0:.2f}x the bound at concurrency "
        f"{args.concurrency} (target <= {TARGET_RATIO}x: {verdict}); naive {naive:.2f} s "
        f"= {naive / wall:.1f}x slower"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with throwaway_database("sync_bench"):
        benchmark(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
