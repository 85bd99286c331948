"""Argument checks the commands share, so a bad value gets the same one-line answer everywhere."""

from __future__ import annotations

import argparse
import getpass
import math
import re
from datetime import timedelta
from urllib.parse import urlsplit

from sync.changelog import ParkedFilter
from sync.errors import misspelled_url, without_password
from sync.planner import EntityKey, Kind


def url_problem(value: str) -> str | None:
    """What is wrong with a target base URL, or None when it is a usable http(s) URL."""
    if misspelled := misspelled_url(value.strip()):
        return misspelled
    shown = without_password(value)
    try:
        parts = urlsplit(value.strip())
        parts.port  # noqa: B018  # read only to be checked: a number from 0 to 65535
    except ValueError:  # a bracket left open (http://[::1), a port that is not a port
        return f"must be an http(s) URL, got {shown!r}"
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        return f"must be an http(s) URL, got {shown!r}"
    if parts.query or parts.fragment or value.strip().endswith(("?", "#")):
        # The calls' paths go after it: /posts would follow a query, or be lost in a fragment.
        return f"must be a base URL, without a ?query or #fragment, got {shown!r}"
    return None


def http_url(value: str) -> str:
    """argparse type: an http(s) base URL, without a trailing slash."""
    problem = url_problem(value)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return value.strip().rstrip("/")


# The most seconds a timeout or a time budget may be: a day. More is no limit anyone means, and
# the waits of threads and sockets take no more than a few centuries (inf or 1e300 overflow them).
MOST_SECONDS = 86_400


def positive_seconds(value: str) -> float:
    """argparse type: a number of seconds above 0, up to MOST_SECONDS."""
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, got {value!r}") from None
    if not seconds > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {value!r}")
    if not seconds <= MOST_SECONDS:
        raise argparse.ArgumentTypeError(f"must be at most {MOST_SECONDS} seconds, got {value!r}")
    return seconds


def seconds_problem(seconds: float) -> str | None:
    """What is wrong with a number of seconds already parsed, if it is not finite or is over
    MOST_SECONDS (a NaN included); its floor is each option's own."""
    if math.isfinite(seconds) and seconds <= MOST_SECONDS:
        return None
    return f"must be a number of seconds up to {MOST_SECONDS}, got {seconds:g}"


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


_AGE = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


# The oldest an age may be: a hundred years (past it, no date can be that old).
MOST_DAYS = 36_500


def age_problem(value: str) -> str | None:
    """What is wrong with an age such as 30m, 2h or 7d, or None."""
    match = _AGE.match(value.strip())
    if not match:
        return f"must be a number and a unit (s, m, h or d), e.g. 2h; got {value!r}"
    number, unit = match.groups()
    if float(number) * _UNITS[unit] > MOST_DAYS * _UNITS["d"]:
        return f"must be at most {MOST_DAYS} days, got {value!r}"
    return None


def age(value: str) -> timedelta:
    """An age given as 30m, 2h, 7d; check it with age_problem() first."""
    number, unit = _AGE.match(value.strip()).groups()
    return timedelta(seconds=float(number) * _UNITS[unit])


def status_problem(value: str) -> str | None:
    """What is wrong with an HTTP status given to filter on (100-599, or none), or None."""
    text = value.strip().lower()
    if text == "none" or (text.isdigit() and 100 <= int(text) <= 599):
        return None
    return f"must be an HTTP status such as 422, or none (no answer); got {value!r}"


def parked_filter(options: dict) -> ParkedFilter:
    """The parked entities an operator named with --kind, --status, --older-than, --entity."""
    status = options.get("status")
    return ParkedFilter(
        kind=Kind(options["kind"]) if options.get("kind") else None,
        status=None if status is None else (0 if status.strip().lower() == "none" else int(status)),
        older_than=age(options["older_than"]) if options.get("older_than") else None,
        entities=tuple(entity_key(v) for v in options.get("entity") or ()) or None,
    )


def actor() -> str:
    """Who runs this command, as an operator decision names them: the system user."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
