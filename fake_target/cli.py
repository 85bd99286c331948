"""python -m fake_target: serve generated posts and comments until interrupted."""

from __future__ import annotations

import argparse
import time

from fake_target.data import COMMENTS_PER_POST
from fake_target.target import FakeTarget


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m fake_target",
        description="Serve generated JSONPlaceholder-like posts and comments until interrupted.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3000)
    parser.add_argument("--posts", type=int, default=100, help="posts to serve (default 100)")
    parser.add_argument("--comments-per-post", type=int, default=COMMENTS_PER_POST)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated data")
    parser.add_argument(
        "--assign-ids", action="store_true", help="give every POST an id of its own choosing"
    )
    parser.add_argument(
        "--stores-nothing",
        action="store_true",
        help="answer writes but keep nothing, like the public JSONPlaceholder site",
    )
    args = parser.parse_args(argv)
    server = FakeTarget(
        host=args.host,
        port=args.port,
        latency=args.latency,
        assign_ids=args.assign_ids,
        stores_nothing=args.stores_nothing,
    )
    server.load_generated(args.posts, comments_per_post=args.comments_per_post, seed=args.seed)
    with server:
        print(
            f"Fake target serving {len(server.posts)} posts and {len(server.comments)} comments "
            f"at {server.url} (Ctrl-C to stop)",
            flush=True,
        )
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
