"""Errors of the sync app's use cases; their messages are meant for the operator as they are.

Every error the sync app raises is a SyncError, so an edge catches one hierarchy.
"""

from __future__ import annotations

import re
from collections.abc import Sequence


def tables_missing(reason: str) -> bool:
    """Whether a database error's first line says a table is missing, as SQLite and PostgreSQL
    word it: the migrations were not applied."""
    return "no such table" in reason or (
        reason.startswith("relation ") and reason.endswith("does not exist")
    )


# The password of a URL's user (http://user:password@host): never shown, never kept.
# The user's part ends at the last @ before the path, as urlsplit reads it: a password may hold @.
_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^/\s:@]*):[^/\s]*@", re.IGNORECASE)


def without_password(text: str) -> str:
    """The text with the password of any URL in it replaced by ***."""
    return _PASSWORD.sub(r"\1:***@", text)


def misspelled_url(url: str) -> str | None:
    """What makes a URL one that cannot be read as meant, in words that show no part of it (a
    password may be what is misspelled); None for one that can. A space or tab in it; or an @
    after a /, ? or # (http://user:pa/ss@host reads as host `user`, its password as the path)."""
    if re.search(r"\s", url):
        return "holds a space or tab: percent-encode it (%20, %09)"
    rest = url.partition("://")[2]
    cut = re.search(r"[/?#]", rest)
    if cut is not None and "@" in rest[cut.start() :]:
        return (
            "holds an @ after its host: percent-encode a /, ? or # in its user or password "
            "(%2F, %3F, %23), or an @ in its path (%40)"
        )
    return None


class SyncError(Exception):
    """A use case of the sync app could not do its job; nothing half-done is left behind. Its
    message names no URL's password (a target's URL may carry one)."""

    def __init__(self, message: object = "", *args: object) -> None:
        super().__init__(without_password(str(message)), *args)


class SyncLocked(SyncError):
    """Another sync_changes run holds the lock."""


class TargetChanged(SyncError):
    """The sync state describes another target than the one this run was given."""


class FullRunRefused(SyncError):
    """A full run would delete more of the target's records than it may without being told."""


class ImportRefused(SyncError):
    """The database already holds posts or comments."""


class ImportStopped(SyncError):
    """A stop was asked for before the import committed; nothing was written."""


class ImportValidationError(SyncError):
    """Some records from the target break the API's rules; `problems` lists the first ones."""

    def __init__(self, problems: Sequence[object], total: int) -> None:
        self.problems = list(problems)
        self.total = total
        noun = "problem" if total == 1 else "problems"
        lines = [f"{total} {noun} in the target's data; nothing was imported:"]
        lines += [str(problem) for problem in self.problems]
        if total > len(self.problems):
            lines.append(f"... and {total - len(self.problems)} more")
        super().__init__("\n".join(lines))


class TargetApiError(SyncError):
    """A call to the target failed; `status` is None when no HTTP answer arrived."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        body: str = "",
        retry_after: str | None = None,
        outcome_unknown: bool = False,
        timed_out: bool = False,
        sent: bool = True,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = body
        self.retry_after = retry_after
        # The request may have reached the target and been carried out, though no good answer
        # came back (a timeout or dropped connection after sending, a 5xx).
        self.outcome_unknown = outcome_unknown
        # No answer within the timeout: the target may still be carrying the request out.
        self.timed_out = timed_out
        # False: the call never started, the caller having asked for a stop.
        self.sent = sent

    @property
    def credentials_refused(self) -> bool:
        """The target (or a proxy) asks for other credentials: no call will do better until
        someone changes them."""
        return self.status in REFUSED_CREDENTIALS

    @property
    def transient(self) -> bool:
        """Worth trying again later: no answer, a server error, a rate limit, or an answer
        that leaves unknown whether the call was carried out."""
        return self.status is None or self.status in TRANSIENT_STATUSES or self.outcome_unknown


# Answers worth trying again later: a server error or a rate limit.
TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})
# Answers refusing who is calling, whatever the call: the target's 401, a proxy's 407.
REFUSED_CREDENTIALS = frozenset({401, 407})


_CALL = re.compile(r"^(?:GET|POST|PUT|PATCH|DELETE) \S+: ")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
ERROR_CLASS_WORDS = 8


def error_class(message: str) -> str:
    """A failure's message as failures alike share it: without the call's URL, its numbers
    (ids, seconds) as #, its first words. `PUT http://t/posts/7: no answer within 10 s` and
    `PUT http://t/posts/8: no answer within 10 s` are both `no answer within # s`."""
    text = _NUMBER.sub("#", _CALL.sub("", " ".join(message.split())))
    return " ".join(text.split()[:ERROR_CLASS_WORDS])[:120]
