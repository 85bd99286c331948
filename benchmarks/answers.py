"""One request of each kind by hand, before wrk measures it (benchmarks/api_throughput.py).

wrk counts an error page as an answer like any other, so every side must first answer with the
expected status and JSON, the same rows as the other side, and a body of a similar size.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

# Bodies further apart than this make the comparison unfair: said beside the figures.
SIZE_TOLERANCE = 1.5


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs) -> None:
        return None  # a redirect is an answer of its own, not the one to measure


_OPENER = urllib.request.build_opener(_NoRedirect)


def fetch(
    url: str,
    *,
    method: str = "GET",
    body: str | None = None,
    headers: dict[str, str] | None = None,
    expected: int = 200,
) -> tuple[Any, int]:
    """The JSON an answer holds and its body's size in bytes; exits unless it is `expected`."""
    data = body.encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with _OPENER.open(request, timeout=30) as response:
            status, content_type, content = response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        status, content_type, content = exc.code, exc.headers, exc.read()
    except OSError as exc:
        raise SystemExit(f"{method} {url}: {exc}") from None
    content_type = content_type.get("Content-Type", "")
    if status != expected or "json" not in content_type:
        raise SystemExit(
            f"{method} {url} answered {status} ({content_type or 'no Content-Type'}), "
            f"not {expected} with JSON: {content[:300]!r}"
        )
    return json.loads(content), len(content)


def rows_in(data: Any) -> int:
    """Posts or comments in an answer: a page's results, an array's items, or one item."""
    if isinstance(data, dict) and isinstance(data.get("results"), list):
        return len(data["results"])
    return len(data) if isinstance(data, list) else 1


def check_read(urls: dict[str, str], *, headers: dict[str, str] | None = None) -> dict[str, int]:
    """GET each side's URL (with `headers`): all answer 200 with JSON and the same number of
    rows. Body sizes by side; a note when they are far apart."""
    answers = {side: fetch(url, headers=headers or {}) for side, url in urls.items()}
    rows = {side: rows_in(data) for side, (data, _) in answers.items()}
    if len(set(rows.values())) > 1:
        raise SystemExit(f"the sides answer different rows: {rows} from {urls}")
    sizes = {side: size for side, (_, size) in answers.items()}
    if max(sizes.values()) > SIZE_TOLERANCE * min(sizes.values()):
        print(f"note: bodies of different sizes, {sizes} bytes, from {urls}")
    return sizes


def check_write(
    urls: dict[str, str],
    *,
    method: str,
    bodies: dict[str, str | None],
    headers: dict[str, dict[str, str]],
    expected: int,
) -> dict[str, int]:
    """Send each side's write: a POST or PUT answers `expected` with the item (JSON with an id);
    a DELETE answers 204, or 200 as json-server does. Body sizes."""
    sizes = {}
    for side, url in urls.items():
        if method == "DELETE":
            sizes[side] = _deleted(url, headers[side])
            continue
        data, sizes[side] = fetch(
            url, method=method, body=bodies[side], headers=headers[side], expected=expected
        )
        if not isinstance(data, dict) or not isinstance(data.get("id"), int):
            raise SystemExit(f"{method} {url} answered without the item's id: {data!r}")
    return sizes


def _deleted(url: str, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, method="DELETE", headers=headers)
    try:
        with _OPENER.open(request, timeout=30) as response:
            status, content = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, content = exc.code, exc.read()
    except OSError as exc:
        raise SystemExit(f"DELETE {url}: {exc}") from None
    if status not in (200, 204):
        raise SystemExit(f"DELETE {url} answered {status}, not 204 (or 200): {content[:300]!r}")
    return len(content)
