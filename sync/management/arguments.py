"""Argument checks the commands share, so a bad value gets the same one-line answer everywhere."""

from __future__ import annotations

import argparse
from urllib.parse import urlsplit

from sync.planner import EntityKey, Kind


def url_problem(value: str) -> str | None:
    """What is wrong with a target base URL, or None when it is a usable http(s) URL."""
    parts = urlsplit(value.strip())
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        return f"must be an http(s) URL, got {value!r}"
    return None


def http_url(value: str) -> str:
    """argparse type: an http(s) base URL, without a trailing slash."""
    problem = url_problem(value)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return value.strip().rstrip("/")


def positive_seconds(value: str) -> float:
    """argparse type: a number of seconds above 0."""
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, got {value!r}") from None
    if not seconds > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {value!r}")
    return seconds


def entity_problem(value: str) -> str | None:
    """What is wrong with an entity given as KIND:ID (post:5, comment:12), or None."""
    kind, _, pk = value.strip().partition(":")
    if kind not in {k.value for k in Kind} or not (pk.isascii() and pk.isdigit()) or int(pk) < 1:
        return f"must be post:ID or comment:ID with a positive ID, e.g. post:5; got {value!r}"
    return None


def entity_key(value: str) -> EntityKey:
    """An entity given as KIND:ID; check it with entity_problem() first."""
    kind, _, pk = value.strip().partition(":")
    return EntityKey(Kind(kind), int(pk))
