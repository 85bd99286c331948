"""The only module that speaks HTTP to the target (a JSONPlaceholder-compatible API)."""

from __future__ import annotations

import random
import threading
import time
from email.utils import parsedate_to_datetime
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from requests.utils import get_netrc_auth
from urllib3.exceptions import NewConnectionError, ProtocolError, ReadTimeoutError
from urllib3.util.retry import Retry

from sync.errors import TRANSIENT_STATUSES, TargetApiError
from sync.target import holds

RESOURCES = ("posts", "comments")


class RateLimiter:
    """Spaces calls at least 1/max_rps seconds apart across threads; 0 means unlimited."""

    def __init__(self, max_rps: float) -> None:
        self.interval = 1.0 / max_rps if max_rps > 0 else 0.0
        self._next_slot = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        if not self.interval:
            return
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next_slot)
            self._next_slot = slot + self.interval
        if slot > now:
            time.sleep(slot - now)


class TargetApiClient:
    """Calls the target's /posts and /comments over one keep-alive session.

    Idempotent calls (GET, PUT, DELETE) are retried by urllib3 on connection errors, timeouts,
    5xx and 429, with capped exponential backoff, jitter and Retry-After. A POST is never
    resent blindly: when its outcome is unknown, `create` first asks the target with a GET.
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
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.retries = retries
        self.backoff_factor = backoff_factor
        self.backoff_max = backoff_max
        self.rate_limiter = RateLimiter(max_rps)
        self.session = requests.Session()
        self.session.headers.update({"Accept": "application/json"})
        retry = Retry(
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
        adapter = HTTPAdapter(max_retries=retry, pool_connections=1, pool_maxsize=pool_size)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        # Session.request reads the environment (proxies, CA bundle, netrc) and merges the
        # session's cookies on every call: a quarter of a call's CPU. The environment is read
        # once here instead, and the target, a JSON API, is sent no cookies.
        self._send_options = self.session.merge_environment_settings(
            self.base_url, {}, None, None, None
        )
        self._auth = get_netrc_auth(self.base_url) if self.session.trust_env else None

    @classmethod
    def from_settings(
        cls,
        *,
        url: str | None = None,
        timeout: float | None = None,
        max_rps: float = 0.0,
        pool_size: int = 10,
    ) -> TargetApiClient:
        """A client for FAKE_API_URL (or `url`) with the SYNC_* retry settings."""
        from django.conf import settings

        return cls(
            base_url=url or settings.FAKE_API_URL,
            timeout=timeout or settings.FAKE_API_TIMEOUT,
            retries=settings.SYNC_RETRIES,
            backoff_factor=settings.SYNC_BACKOFF_FACTOR,
            backoff_max=settings.SYNC_BACKOFF_MAX,
            max_rps=max_rps,
            pool_size=pool_size,
        )

    def close(self) -> None:
        self.session.close()

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

    def get(self, resource: str, remote_id: int) -> dict[str, Any] | None:
        """One record, or None when the target does not have it."""
        response = self._request("GET", self._url(resource, remote_id), missing_ok=True)
        return None if response.status_code == 404 else self._object(response)

    def find(self, resource: str, wanted: dict[str, Any]) -> list[dict[str, Any]]:
        """The records whose fields (the id aside) all equal `wanted`'s.

        Asks with json-server's equality filters (`?userId=1&title=...`) and checks every answer
        itself, so a target that ignores the filters is still answered correctly.
        """
        params = {name: _query_value(value) for name, value in wanted.items() if name != "id"}
        data = self._json(self._request("GET", self._url(resource), params=params))
        if not isinstance(data, list):
            raise TargetApiError(f"GET {self._url(resource)} did not answer with a JSON list")
        return [record for record in data if isinstance(record, dict) and holds(record, wanted)]

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
                time.sleep(self._backoff(attempt, exc))
        raise AssertionError("unreachable")  # pragma: no cover

    def update(self, resource: str, remote_id: int, payload: dict[str, Any]) -> dict | None:
        """PUT the whole record; None when the target does not have it (404)."""
        response = self._request(
            "PUT", self._url(resource, remote_id), json=payload, missing_ok=True
        )
        return None if response.status_code == 404 else self._object(response, strict=False)

    def delete(self, resource: str, remote_id: int) -> bool:
        """DELETE a record; False when the target did not have it (404), which is no failure."""
        response = self._request("DELETE", self._url(resource, remote_id), missing_ok=True)
        return response.status_code != 404

    # --- Plumbing -------------------------------------------------------------------------------

    def _url(self, resource: str, remote_id: int | None = None) -> str:
        if resource not in RESOURCES:
            raise ValueError(f"unknown resource {resource!r}")
        return f"{self.base_url}/{resource}" + ("" if remote_id is None else f"/{remote_id}")

    def _request(
        self,
        method: str,
        url: str,
        *,
        json: Any = None,
        params: dict[str, str] | None = None,
        missing_ok: bool = False,
    ) -> requests.Response:
        self.rate_limiter.wait()
        try:
            request = requests.Request(
                method, url, headers=self.session.headers, json=json, params=params, auth=self._auth
            )
            response = self.session.send(
                request.prepare(), timeout=self.timeout, **self._send_options
            )
        except requests.ConnectTimeout:
            raise TargetApiError(
                f"{method} {url}: could not connect within {self.timeout:g} s"
            ) from None
        except requests.Timeout:
            raise TargetApiError(
                f"{method} {url}: no answer within {self.timeout:g} s",
                outcome_unknown=True,
                timed_out=True,
            ) from None
        except requests.ConnectionError as exc:
            cause = _cause(exc)
            if isinstance(cause, ReadTimeoutError):
                raise TargetApiError(
                    f"{method} {url}: no answer within {self.timeout:g} s",
                    outcome_unknown=True,
                    timed_out=True,
                ) from None
            raise TargetApiError(
                f"{method} {url}: connection failed ({_reason(exc)})",
                outcome_unknown=not isinstance(cause, NewConnectionError),
            ) from None
        except requests.RequestException as exc:
            raise TargetApiError(f"{method} {url}: {_reason(exc)}", outcome_unknown=True) from None
        if response.status_code == 404 and missing_ok:
            return response
        if not 200 <= response.status_code < 300:
            body = response.text[:500]
            raise TargetApiError(
                f"{method} {url}: HTTP {response.status_code} {response.reason or ''}".rstrip()
                + (f": {body[:200]}" if body else ""),
                status=response.status_code,
                body=body,
                retry_after=response.headers.get("Retry-After"),
                outcome_unknown=response.status_code >= 500,
            )
        return response

    def _json(self, response: requests.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            request = response.request
            raise TargetApiError(
                f"{request.method} {request.url}: the answer is not JSON",
                status=response.status_code,
                body=response.text[:500],
            ) from None

    def _object(self, response: requests.Response, *, strict: bool = True) -> dict[str, Any]:
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


def _query_value(value: Any) -> str:
    """A field value as json-server's filters compare it (JavaScript's toString())."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _retry_after(exc: TargetApiError) -> float | None:
    """Seconds the target asked us to wait (Retry-After as seconds or an HTTP date)."""
    if exc.retry_after is None:
        return None
    try:
        return max(0.0, float(exc.retry_after))
    except ValueError:
        try:
            return max(0.0, parsedate_to_datetime(exc.retry_after).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


def _cause(exc: Exception) -> BaseException:
    """The innermost cause of a requests error, without urllib3's wrapping."""
    cause = exc.args[0] if exc.args else exc
    cause = getattr(cause, "reason", cause)  # urllib3's MaxRetryError wraps the last error
    if isinstance(cause, ProtocolError) and len(cause.args) > 1:
        cause = cause.args[1]
    return cause


def _reason(exc: Exception) -> str:
    cause = _cause(exc)
    text = str(cause)
    # NewConnectionError reads "<HTTPConnection object at 0x...>: Failed to establish ...".
    return text.split(">: ", 1)[-1] or type(cause).__name__
