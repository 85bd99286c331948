"""python -m fake_target: serve generated posts and comments until interrupted or terminated."""

from __future__ import annotations

import argparse
import errno
import math
import signal
import sys
import threading

from fake_target.data import COMMENTS_PER_POST
from fake_target.target import FakeTarget

EXIT_CANNOT_SERVE = 1


class _OneLineParser(argparse.ArgumentParser):
    """A usage error is one line and a pointer to --help, as manage.py's are."""

    def error(self, message: str):
        self.exit(2, f"Error: {message} ({self.prog} --help lists the options)\n")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = _OneLineParser(
        prog="python -m fake_target",
        description="Serve generated JSONPlaceholder-like posts and comments until interrupted.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=_port, default=3000)
    parser.add_argument("--posts", type=_count, default=100, help="posts to serve (default 100)")
    parser.add_argument("--comments-per-post", type=_count, default=COMMENTS_PER_POST)
    parser.add_argument("--latency", type=_seconds, default=0.0, help="seconds before each answer")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated data")
    parser.add_argument(
        "--assign-ids", action="store_true", help="give every POST an id of its own choosing"
    )
    parser.add_argument(
        "--stores-nothing",
        action="store_true",
        help="answer writes but keep nothing, like the public JSONPlaceholder site",
    )
    parser.add_argument(
        "--string-ids",
        action="store_true",
        help="string ids, as json-server 1.0 gives them: a POST gets a random one",
    )
    parser.add_argument(
        "--answers-without-ids",
        action="store_true",
        help="answer a POST with the record it stored, without its id",
    )
    parser.add_argument(
        "--rate-limit",
        type=_rate,
        default=0.0,
        metavar="N",
        help="serve at most N requests a second, answering 429 with Retry-After beyond it",
    )
    parser.add_argument(
        "--rewrite",
        action="append",
        default=[],
        metavar="FIELD=HOW",
        type=_rewrite,
        help="store FIELD rewritten: lower (lower case) or strip (trimmed); repeatable",
    )
    return parser.parse_args(argv)


def _port(value: str) -> int:
    if not (value.strip().isdigit() and 0 <= int(value) <= 65535):
        raise argparse.ArgumentTypeError(f"must be a port from 0 to 65535, got {value!r}")
    return int(value)


def _count(value: str) -> int:
    if not value.strip().isdigit():
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value!r}")
    return int(value)


def _at_least_zero(value: str, unit: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not (math.isfinite(number) and number >= 0):
        raise argparse.ArgumentTypeError(f"must be 0 or more{unit}, got {value!r}")
    return number


def _seconds(value: str) -> float:
    return _at_least_zero(value, " seconds")


def _rate(value: str) -> float:
    return _at_least_zero(value, " a second")


REWRITES = {"lower": str.lower, "strip": str.strip}


def _rewrite(value: str) -> tuple[str, object]:
    name, _, how = value.partition("=")
    if not name or how not in REWRITES:
        raise argparse.ArgumentTypeError(
            f"expected FIELD=lower or FIELD=strip, e.g. email=lower; got {value!r}"
        )
    return name, REWRITES[how]


def cannot_listen(host: str, port: int, error: OSError) -> str:
    """One line saying why the server cannot listen, and what to do about it."""
    if error.errno == errno.EADDRINUSE:
        return (
            f"Error: port {port} on {host} is already in use (a fake target already running?). "
            "Stop that process, or pick another port with --port (under make: TARGET_PORT=...)."
        )
    return f"Error: cannot listen on {host}:{port}: {error.strerror or error}"


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    server = FakeTarget(
        host=args.host,
        port=args.port,
        latency=args.latency,
        assign_ids=args.assign_ids,
        stores_nothing=args.stores_nothing,
        string_ids=args.string_ids,
        answers_without_ids=args.answers_without_ids,
        rewrite=dict(args.rewrite),
        rate_limit=args.rate_limit,
    )
    server.load_generated(args.posts, comments_per_post=args.comments_per_post, seed=args.seed)
    try:
        server.start()
    except OSError as error:
        sys.stderr.write(cannot_listen(args.host, args.port, error) + "\n")
        sys.exit(EXIT_CANNOT_SERVE)

    stopping = threading.Event()
    # SIGTERM (kill, docker stop) ends it as Ctrl-C does: the server stops, the exit status is 0.
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    try:
        print(
            f"Fake target serving {len(server.posts)} posts and {len(server.comments)} comments "
            f"at {server.url} (Ctrl-C to stop)",
            flush=True,
        )
        stopping.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
