"""wrk for the throughput benchmark (benchmarks/api_throughput.py): a run and its report."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

THREADS, CONNECTIONS = 2, 16
# wrk leaves an answer slower than its timeout (2 s by default) out of the latency distribution
# and counts it as an error: under load a slow answer is still an answer, to be in the p99.
TIMEOUT = "30s"
_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
_PERCENTILE = re.compile(r"^\s*(\d+)%\s+([\d.]+)(us|ms|s|m|h)\s*$", re.MULTILINE)
_REQUESTS = re.compile(r"^\s*(\d+) requests in ", re.MULTILINE)
_RATE = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
_NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_SOCKET_ERRORS = re.compile(r"Socket errors: (connect \d+, read \d+, write \d+, timeout \d+)")


@dataclass(frozen=True)
class WrkRun:
    requests: int
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    non_2xx: int  # answers outside 2xx and 3xx
    socket_errors: str  # wrk's line: "connect 0, read 0, write 0, timeout 0", or ""

    def failure(self) -> str | None:
        """Why this run measured errors rather than answers, if it did."""
        if self.requests == 0:
            return "no request completed"
        if self.non_2xx:
            return f"Non-2xx or 3xx responses: {self.non_2xx} of {self.requests} requests"
        if self.socket_errors:
            return f"socket errors: {self.socket_errors} in {self.requests} requests"
        return None


def command(url: str, *, seconds: float, script: Path | None = None) -> list[str]:
    """The wrk command line the benchmark runs (and its summary names)."""
    line = ["wrk", f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{seconds:g}s", "--latency"]
    line += ["--timeout", TIMEOUT]
    return [*line, *(["-s", str(script)] if script else []), url]


def run(url: str, *, seconds: float, script: Path | None = None) -> WrkRun:
    """Load `url` for `seconds` and read wrk's report; exits with wrk's own error if it fails."""
    wrk = command(url, seconds=seconds, script=script)
    result = subprocess.run(wrk, capture_output=True, text=True, timeout=seconds + 60)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(wrk)} failed: {(result.stderr or result.stdout).strip()}")
    return parse(result.stdout)


def parse(report: str) -> WrkRun:
    """Read wrk's report (with --latency): counts, rate, p50 and p99 in milliseconds."""
    percentiles = {
        int(share): float(value) * _UNITS_MS[unit]
        for share, value, unit in _PERCENTILE.findall(report)
    }
    requests, rate = _REQUESTS.search(report), _RATE.search(report)
    if requests is None or rate is None or not {50, 99} <= percentiles.keys():
        raise SystemExit(f"cannot read wrk's report:\n{report}")
    non_2xx = _NON_2XX.search(report)
    socket_errors = _SOCKET_ERRORS.search(report)
    return WrkRun(
        requests=int(requests.group(1)),
        requests_per_second=float(rate.group(1)),
        p50_ms=percentiles[50],
        p99_ms=percentiles[99],
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=socket_errors.group(1) if socket_errors else "",
    )


def get_script(path: Path, *, headers: dict[str, str]) -> Path:
    """A wrk Lua script that sends every request as a GET with `headers`."""
    lines = [f'wrk.headers["{name}"] = [==[{value}]==]' for name, value in headers.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def post_script(path: Path, *, body: str, headers: dict[str, str]) -> Path:
    """A wrk Lua script that sends every request as a POST of `body` with `headers`."""
    # Lua long brackets take the text as it is: no escaping of the JSON's quotes.
    lines = ['wrk.method = "POST"', f"wrk.body = [==[{body}]==]"]
    lines += [f'wrk.headers["{name}"] = [==[{value}]==]' for name, value in headers.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def paths_script(
    path: Path, *, method: str, paths: list[str], headers: dict[str, str], body: str | None = None
) -> Path:
    """A wrk Lua script that sends `method` to each of `paths` in turn, a share of them a thread
    (thread i of n: paths i, i + n, ...), going round again at the end; with `body` and
    `headers` on every request."""
    lines = [f'wrk.method = "{method}"']
    if body is not None:
        lines.append(f"wrk.body = [==[{body}]==]")
    lines += [f'wrk.headers["{name}"] = [==[{value}]==]' for name, value in headers.items()]
    listed = ",\n".join(f"[==[{each}]==]" for each in paths)
    lines += [
        f"local paths = {{\n{listed}\n}}",
        "local started = 0",
        "function setup(thread)",
        "    thread:set('next_path', started)",
        f"    thread:set('step', {THREADS})",
        "    started = started + 1",
        "end",
        "function request()",
        "    local this = paths[(next_path % #paths) + 1]",
        "    next_path = next_path + step",
        "    return wrk.format(nil, this)",
        "end",
    ]
    path.write_text("\n".join(lines) + "\n")
    return path
