"""The only module that speaks HTTP to the target (a JSONPlaceholder-compatible API)."""

from __future__ import annotations

import builtins
import json
import random
import re
import tempfile
import time
from base64 import b64encode
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote, unquote_to_bytes, urlencode, urlsplit, urlunsplit

import urllib3
from urllib3.exceptions import (
    ClosedPoolError,
    ConnectTimeoutError,
    MaxRetryError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    ResponseError,
)
from urllib3.util import make_headers
from urllib3.util.retry import Retry

from sync.errors import TRANSIENT_STATUSES, TargetApiError
from sync.jsonstream import JsonListReader, NotJson
from sync.pacing import CONGESTED, Pacer
from sync.planner import Kind
from sync.target import RemoteId, holds
from sync.transport import connections, watching

# How much of an error answer's body a message quotes, on one line.
QUOTED_CHARACTERS = 100
# How often a wait between attempts looks whether the caller stopped.
WAIT_SLICE = 0.05
# Bytes of a list read at a time (`each_record`), and the size beyond which its answer is
# written to disk rather than kept in memory until it is read.
PIECE_BYTES = 1 << 16
SPOOL_BYTES = 1 << 23


def _never() -> bool:
    return False


def wait(seconds: float, stopping: Callable[[], bool]) -> bool:
    """Sleep `seconds`, cut short once `stopping()`; True when it slept the whole time."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        if stopping():
            return False
        time.sleep(min(left, WAIT_SLICE))
    return not stopping()


class _BodyCut(Exception):
    """An answer that broke off after its head: the read may be tried again."""

    def __init__(self, error: TargetApiError) -> None:
        super().__init__(str(error))
        self.error = error


class RetriesStopped(Exception):
    """The caller stopped while a call waited to be tried again: no further attempt."""

    def __init__(self, retry: Retry, response: Any = None) -> None:
        super().__init__("stopped between attempts")
        self.response = response
        self.error = retry.history[-1].error if retry.history else None


class StoppableRetry(Retry):
    """urllib3's retries, paced: a 429 or 503 slows the pacer, a Retry-After pauses every call of
    it (not only this one), and an attempt tried again waits its turn. None once `stopping()`
    says so, and no wait past that moment."""

    def __init__(
        self,
        *args: Any,
        stopping: Callable[[], bool] = _never,
        pacer: Pacer | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.stopping = stopping
        self.pacer = pacer or Pacer()

    def new(self, **kw: Any) -> StoppableRetry:
        return super().new(**{"stopping": self.stopping, "pacer": self.pacer, **kw})

    def is_exhausted(self) -> bool:
        return self.stopping() or super().is_exhausted()

    def increment(self, method=None, url=None, response=None, error=None, *args, **kwargs):
        if response is not None and response.status in CONGESTED:
            self.pacer.note_congestion(retry_after=self.get_retry_after(response))
        return super().increment(method, url, response, error, *args, **kwargs)

    def sleep_for_retry(self, response: Any) -> bool:
        if not self.get_retry_after(response):
            return False
        # The pause it asked for is the pacer's now: every call waits it out.
        if not self.pacer.wait_turn(self.stopping):
            raise RetriesStopped(self, response)
        return True

    def _sleep_backoff(self) -> None:
        if not wait(self.get_backoff_time(), self.stopping) or not self.pacer.wait_turn(
            self.stopping
        ):
            raise RetriesStopped(self)


class TargetApiClient:
    """Calls the target's /posts and /comments over a pool of keep-alive connections.

    Idempotent calls (GET, PUT, DELETE) are retried by urllib3 on connection errors, timeouts,
    5xx and 429, with capped exponential backoff, jitter and Retry-After. A POST is never
    resent blindly: when its outcome is unknown, `create` first asks the target with a GET.

    `timeout` bounds each attempt as a whole, from connecting to the last byte of the answer
    (sync.transport). Once `stop_when()` is true, no call starts and no attempt is retried: a
    call under way ends within one timeout.

    It speaks urllib3 directly: a requests session doubled the CPU of each call, and a run's
    worker threads share one interpreter. It still connects as requests would: through the proxy
    the environment names for the target (HTTP_PROXY, HTTPS_PROXY, NO_PROXY), trusting
    REQUESTS_CA_BUNDLE or else requests' CA bundle, and it follows redirects.
    """

    def __init__(
        self,
        *,
        base_url: str,
        timeout: float = 10.0,
        retries: int = 4,
        backoff_factor: float = 0.5,
        backoff_max: float = 30.0,
        max_rps: float = 0.0,
        pool_size: int = 10,
    ) -> None:
        self.base_url, credentials = _without_credentials(base_url.rstrip("/"))
        self.timeout = timeout
        self.retries = retries
        self.backoff_factor = backoff_factor
        self.backoff_max = backoff_max
        # How fast and how many at once: below max_rps, following the target's answers.
        self.pacer = Pacer(max_rps=max_rps)
        # Set by whoever runs the calls (a run's stop signal): true once no call should start.
        self.stop_when: Callable[[], bool] = _never
        self.retry = StoppableRetry(
            stopping=self._stopping,
            pacer=self.pacer,
            total=retries,
            connect=retries,
            read=retries,
            status=retries,
            other=0,
            allowed_methods=frozenset({"GET", "PUT", "DELETE", "HEAD"}),
            status_forcelist=TRANSIENT_STATUSES,
            backoff_factor=backoff_factor,
            backoff_max=backoff_max,
            backoff_jitter=backoff_factor,
            respect_retry_after_header=True,
            raise_on_status=False,
        )
        self.pool = connections(self.base_url, pool_size=pool_size)
        self.headers = {**make_headers(accept_encoding=True), "Accept": "application/json"}
        if credentials is not None:
            # A user and password in the URL are sent as Basic authentication, their bytes as
            # the URL spells them (UTF-8, as curl sends them); urllib3 drops the header on a
            # redirect to another host.
            self.headers["Authorization"] = f"Basic {b64encode(credentials).decode('ascii')}"

    @classmethod
    def from_settings(
        cls,
        *,
        url: str | None = None,
        timeout: float | None = None,
        max_rps: float = 0.0,
        pool_size: int = 10,
    ) -> TargetApiClient:
        """A client for TARGET_URL (or `url`) with the SYNC_* retry settings."""
        from django.conf import settings

        return cls(
            base_url=url or settings.TARGET_URL,
            timeout=timeout or settings.FAKE_API_TIMEOUT,
            retries=settings.SYNC_RETRIES,
            backoff_factor=settings.SYNC_BACKOFF_FACTOR,
            backoff_max=settings.SYNC_BACKOFF_MAX,
            max_rps=max_rps,
            pool_size=pool_size,
        )

    def close(self) -> None:
        self.pool.clear()

    def __enter__(self) -> TargetApiClient:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # --- Calls ----------------------------------------------------------------------------------

    def list(self, resource: str) -> list[dict[str, Any]]:
        """Every record of a collection; the answer must be a JSON list of objects."""
        data = self._json(self._request("GET", self._url(resource)))
        if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
            raise TargetApiError(f"GET {self._url(resource)} did not answer with a JSON list")
        return data

    def each_record(self, resource: str, take: Callable[[dict[str, Any]], None]) -> None:
        """Every record of a collection handed to `take`, the answer never held whole in memory;
        errors as `list`'s. The answer is first written to a file as it arrives (the timeout
        bounds that, as it bounds any call), then read from there item by item. An answer that
        breaks off is asked for again, up to the retries."""
        url = self._url(resource)
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as body:

            def keep(answer: Any) -> None:
                body.seek(0)
                body.truncate()
                for piece in answer.stream(PIECE_BYTES, decode_content=True):
                    body.write(piece)

            for attempt in range(self.retries + 1):
                try:
                    response = self._request("GET", url, consume=keep)
                    break
                except _BodyCut as cut:
                    if attempt == self.retries or self.stop_when():
                        raise cut.error from None
            body.seek(0)
            _read_list(body, take, url=url, status=response.status_code)

    def get(self, resource: str, remote_id: RemoteId) -> dict[str, Any] | None:
        """One record, or None when the target does not have it."""
        response = self._request("GET", self._url(resource, remote_id), missing_ok=True)
        return None if response.status_code == 404 else self._object(response)

    def find(
        self,
        resource: str,
        wanted: dict[str, Any],
        *,
        filters: tuple[str, ...] | None = None,
        rewritten: frozenset[str] = frozenset(),
        loose: bool = False,
    ) -> builtins.list[dict[str, Any]]:  # the builtin, not the method list() above
        """The records whose fields (the id aside) all equal `wanted`'s.

        Asks with json-server's equality filters (`?userId=1&title=...`) on the fields named by
        `filters` (default: all), and checks every answer itself (`sync.target.holds`, with
        `rewritten` and `loose`), so a target that ignores the filters is still answered
        correctly. A value that json-server 1.0 would read as another type (the text "5" read
        as the number 5) is not filtered on, only checked.
        """
        names = [name for name in wanted if name != "id" and (filters is None or name in filters)]
        params = {
            name: _query_value(wanted[name])
            for name in names
            if name not in rewritten and filterable(wanted[name])
        }
        data = self._json(self._request("GET", self._url(resource), params=params))
        if not isinstance(data, list):
            raise TargetApiError(f"GET {self._url(resource)} did not answer with a JSON list")
        return [
            record
            for record in data
            if isinstance(record, dict) and holds(record, wanted, rewritten=rewritten, loose=loose)
        ]

    def create(self, resource: str, payload: dict[str, Any]) -> dict[str, Any]:
        """POST a record (its `id` included) and return what the target answered.

        A POST is never resent blindly: a 429 is waited out and sent again, but when the outcome
        is unknown (a timeout or dropped connection after sending, a 5xx) the error says so
        (`outcome_unknown`) and the caller looks for the record before creating it again.
        """
        url = self._url(resource)
        for attempt in range(self.retries + 1):
            try:
                return self._object(self._request("POST", url, json=payload), strict=False)
            except TargetApiError as exc:
                if attempt == self.retries or exc.status != 429:
                    raise
                if not wait(self._backoff(attempt, exc), self._stopping):
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def update(self, resource: str, remote_id: RemoteId, payload: dict[str, Any]) -> dict | None:
        """PUT the whole record; None when the target does not have it (404)."""
        response = self._request(
            "PUT", self._url(resource, remote_id), json=payload, missing_ok=True
        )
        if response.status_code == 404:
            return None
        answer = self._carried_out(response)
        return answer if isinstance(answer, dict) else {}

    def delete(self, resource: str, remote_id: RemoteId) -> bool:
        """DELETE a record; False when the target did not have it (404), which is no failure."""
        response = self._request("DELETE", self._url(resource, remote_id), missing_ok=True)
        if response.status_code == 404:
            return False
        self._carried_out(response)
        return True

    # --- Plumbing -------------------------------------------------------------------------------

    def _url(self, resource: str, remote_id: RemoteId | None = None) -> str:
        if resource not in {kind.resource for kind in Kind}:
            raise ValueError(f"unknown resource {resource!r}")
        if remote_id is None:
            return f"{self.base_url}/{resource}"
        segment = quote(str(remote_id), safe="")
        if segment in (".", ".."):
            # A path segment of dots is removed on the way (RFC 3986): encoded, it is the id.
            segment = segment.replace(".", "%2E")
        return f"{self.base_url}/{resource}/{segment}"

    def _request(
        self,
        method: str,
        url: str,
        *,
        json: Any = None,
        params: dict[str, str] | None = None,
        missing_ok: bool = False,
        consume: Callable[[Any], None] | None = None,
    ) -> Response:
        """One call, its attempts retried. With `consume`, a 2xx answer's body is not kept: it
        is handed to `consume` piece by piece, within the attempt's timeout."""
        headers, body = self.headers, None
        if json is not None:
            headers = {**headers, "Content-Type": "application/json"}
            body = _dumps(json)
        if params:
            url = f"{url}?{urlencode(params)}"
        if not self.pacer.acquire(self._stopping):
            raise TargetApiError(f"{method} {url}: not sent, the caller is stopping", sent=False)
        failure: BaseException | None = None
        timeout = self.timeout
        started = time.monotonic()
        answer = None
        try:
            with watching(timeout) as watch:
                try:
                    answer = self.pool.urlopen(
                        method,
                        url,
                        body=body,
                        headers=headers,
                        retries=self.retry,
                        timeout=timeout,
                        preload_content=consume is None,
                    )
                except RetriesStopped as stopped:
                    answer, failure = stopped.response, stopped.error
                except (urllib3.exceptions.HTTPError, OSError) as exc:
                    answer, failure = None, exc
                if consume is not None and answer is not None:
                    cut = _consumed(answer, consume)
                    if cut is not None:
                        answer, failure = None, cut
        finally:
            status = None if answer is None or watch.expired else answer.status
            retry_after = answer.headers.get("Retry-After") if answer is not None else None
            self.pacer.release(
                status,
                latency=time.monotonic() - started,
                retry_after=_seconds(retry_after) if status in CONGESTED else None,
            )
        if answer is None or watch.expired:
            # An attempt the watchdog ended got no answer within the timeout, even when what
            # arrived of it looks whole: http.client takes headers cut short for complete ones.
            error = _failed(method, url, failure, timeout, expired=watch.expired)
            if consume is not None and failure is not None and not watch.expired:
                raise _BodyCut(error)
            raise error
        response = Response(
            method, url, answer.status, answer.reason or "", answer.headers, answer.data or b""
        )
        if response.status_code == 404 and missing_ok:
            return response
        if not 200 <= response.status_code < 300:
            text = response.text[:500]
            raise TargetApiError(
                f"{method} {url}: {_described(response)}{_advice(response.status_code)}",
                status=response.status_code,
                body=text,
                retry_after=response.headers.get("Retry-After"),
                outcome_unknown=response.status_code >= 500,
            )
        return response

    def _stopping(self) -> bool:
        return self.stop_when()

    def _json(self, response: Response) -> Any:
        try:
            return json.loads(response.content)
        except ValueError:
            raise TargetApiError(
                f"{response.method} {response.url}: the answer is not JSON",
                status=response.status_code,
                body=response.text[:500],
            ) from None

    def _carried_out(self, response: Response) -> Any:
        """The JSON of a 2xx answer to a PUT or DELETE (None when it is empty). A body that is
        not JSON (a proxy's or a wrong host's default page) is no answer of the target's: the
        write may not have been carried out, so it is an error, tried again later."""
        if not response.content.strip():
            return None
        try:
            return self._json(response)
        except TargetApiError:
            raise TargetApiError(
                f"{response.method} {response.url}: {_described(response)}, not a JSON answer: "
                "it may not have been carried out",
                status=response.status_code,
                body=response.text[:500],
                outcome_unknown=True,
            ) from None

    def _object(self, response: Response, *, strict: bool = True) -> dict[str, Any]:
        """The answer's JSON object; an empty answer is {}.

        Not `strict` (a write the target accepted): a body that is not JSON is {} too, since
        the write succeeded whatever the target says about it.
        """
        if not response.content.strip():
            return {}
        try:
            data = self._json(response)
        except TargetApiError:
            if strict:
                raise
            return {}
        return data if isinstance(data, dict) else {}

    def _backoff(self, attempt: int, exc: TargetApiError) -> float:
        """As urllib3 waits before the other retries: Retry-After, else capped backoff + jitter."""
        retry_after = _retry_after(exc)
        if retry_after is not None:
            return min(retry_after, Retry.DEFAULT_RETRY_AFTER_MAX)
        delay = self.backoff_factor * (2**attempt) + random.uniform(0, self.backoff_factor)
        return min(self.backoff_max, delay)


def _without_credentials(url: str) -> tuple[str, bytes | None]:
    """The URL without its user and password, and them as `user:password` (the bytes their
    percent-encoding spells), if any."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, None
    host = parts.netloc.rpartition("@")[2]
    user, password = (unquote_to_bytes(part or "") for part in (parts.username, parts.password))
    return urlunsplit(parts._replace(netloc=host)), user + b":" + password


def canonical_url(url: str) -> str:
    """A base URL as the sync state names its target: scheme and host in lower case, the
    default port, credentials and a trailing slash left out (`HTTP://u:p@Host:80/api/` is
    `http://host/api`)."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is not None and (scheme, port) not in (("http", 80), ("https", 443)):
        host = f"{host}:{port}"
    # Credentials in the URL are no part of the target's name (and are not stored).
    return urlunsplit((scheme, host, parts.path.rstrip("/"), parts.query, ""))


def _described(response: Response) -> str:
    """An error answer on one line: its status, its content type and the start of its body.

    An HTML error page or a stack trace is quoted, not pasted: whitespace collapsed, at most
    QUOTED_CHARACTERS characters.
    """
    status = f"HTTP {response.status_code} {response.reason}".rstrip()
    content_type = response.headers.get("Content-Type", "").split(";")[0].strip()
    if content_type:
        status += f" ({content_type})"
    text = " ".join(response.text.split())
    if len(text) > QUOTED_CHARACTERS:
        text = text[: QUOTED_CHARACTERS - 3].rstrip() + "..."
    return f"{status}: {text}" if text else status


def filterable(value: Any) -> bool:
    """True when json-server, 0.17 or 1.0, surely filters on this value as what it is.

    json-server 1.0 reads a filter's text as a number, a boolean or null where JavaScript can,
    then compares strictly: the text "5" or "true" would not find itself. Such texts (and None,
    which has no filter text) are left to the check on our side.
    """
    if value is None:
        return False
    if not isinstance(value, str):
        return True
    # JavaScript trims a byte order mark too, where Python does not.
    stripped = value.strip().strip("\ufeff").strip().lower()
    if stripped in ("true", "false", "null") or stripped.lstrip("+-").startswith(
        ("0x", "0o", "0b")
    ):
        return False
    try:
        float(stripped)
    except ValueError:
        return True
    return False


def _query_value(value: Any) -> str:
    """A field value as json-server's filters compare it (JavaScript's toString())."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _retry_after(exc: TargetApiError) -> float | None:
    """Seconds the target asked us to wait (Retry-After as seconds or an HTTP date)."""
    return _seconds(exc.retry_after)


def _seconds(retry_after: str | None) -> float | None:
    """A Retry-After header's wait in seconds (given as seconds or an HTTP date), or None."""
    if retry_after is None:
        return None
    try:
        return max(0.0, float(retry_after))
    except ValueError:
        try:
            return max(0.0, parsedate_to_datetime(retry_after).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


@dataclass(frozen=True)
class Response:
    """An answer of the target, read in full."""

    method: str
    url: str
    status_code: int
    reason: str
    headers: Mapping[str, str]
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")


def _read_list(body: Any, take: Callable[[dict[str, Any]], None], *, url: str, status: int) -> None:
    """Hand each object of the JSON list in `body` (a file) to `take`; TargetApiError, as
    `list` raises it, when it is not JSON or not a list of objects."""
    reader = JsonListReader()
    listed = True
    try:
        while piece := body.read(PIECE_BYTES):
            for item in reader.feed(piece):
                listed = listed and isinstance(item, dict)
                if listed:
                    take(item)
        for item in reader.close():
            listed = listed and isinstance(item, dict)
            if listed:
                take(item)
    except NotJson:
        raise TargetApiError(
            f"GET {url}: the answer is not JSON",
            status=status,
            body=reader.head.decode("utf-8", "replace")[:500],
        ) from None
    if not (listed and reader.is_list):
        raise TargetApiError(f"GET {url} did not answer with a JSON list")


def _consumed(answer: Any, consume: Callable[[Any], None]) -> BaseException | None:
    """Hand a 2xx answer's body to `consume` (any other is read whole, as usual); the error
    that broke the body off, if one did. The connection is reused only after a whole body."""
    if not 200 <= answer.status < 300:
        try:
            answer.data  # noqa: B018 - read whole, as without `consume`
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            return exc
        answer.release_conn()
        return None
    try:
        consume(answer)
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        answer.close()
        return exc
    except BaseException:
        answer.close()
        raise
    answer.release_conn()
    return None


def _dumps(payload: Any) -> bytes:
    return json.dumps(payload, allow_nan=False).encode()


def _advice(status: int) -> str:
    """What to check after an answer refusing who calls: the target's 401, a proxy's 407."""
    if status == 401:
        return "; check the user and password in TARGET_URL or --url"
    if status == 407:
        return "; check the proxy's user and password in HTTP_PROXY or HTTPS_PROXY"
    return ""


def _failed(
    method: str, url: str, exc: BaseException | None, timeout: float, *, expired: bool = False
) -> TargetApiError:
    """The error of a call that got no answer, saying whether the target may have carried it
    out (anything sent but not answered) or cannot have (no connection)."""
    cause = None if exc is None else _cause(exc)
    if expired or isinstance(cause, ReadTimeoutError):
        return TargetApiError(
            f"{method} {url}: no answer within {timeout:g} s", outcome_unknown=True, timed_out=True
        )
    if cause is None:
        return TargetApiError(f"{method} {url}: no answer", outcome_unknown=True)
    if "Tunnel connection failed: 407" in str(cause):
        # An https target through a proxy that refused its credentials: nothing was sent.
        message = "the proxy refused to connect: HTTP 407 Proxy Authentication Required"
        return TargetApiError(f"{method} {url}: {message}{_advice(407)}", status=407)
    if isinstance(cause, ConnectTimeoutError) and not isinstance(cause, NewConnectionError):
        return TargetApiError(f"{method} {url}: could not connect within {timeout:g} s")
    if isinstance(exc, MaxRetryError) and isinstance(cause, ResponseError):
        return TargetApiError(f"{method} {url}: {_reason(cause)}", outcome_unknown=True)
    if isinstance(exc, MaxRetryError | ProtocolError | ClosedPoolError | OSError):
        return TargetApiError(
            f"{method} {url}: connection failed ({_reason(cause)})",
            outcome_unknown=not isinstance(cause, NewConnectionError),
        )
    return TargetApiError(f"{method} {url}: {_reason(cause)}", outcome_unknown=True)


def _cause(exc: BaseException) -> BaseException:
    """The innermost cause of a urllib3 error."""
    cause: BaseException = exc
    if isinstance(cause, MaxRetryError) and cause.reason is not None:
        cause = cause.reason  # the last error of the retries
    if isinstance(cause, ProtocolError) and len(cause.args) > 1:
        cause = cause.args[1]
    return cause


# What urllib3 puts before a connection's error: the connection, as "<HTTPConnection object at
# 0x...>" or "WatchedHTTPConnection(host='h', port=1)"; the call's URL already says where.
_CONNECTION_PREFIX = re.compile(r"^(<[^>]*>|\w+\(host=[^)]*\)): ")


def _reason(cause: BaseException) -> str:
    return _CONNECTION_PREFIX.sub("", str(cause)) or type(cause).__name__
