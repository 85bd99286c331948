"""The servers of the throughput benchmark (benchmarks/api_throughput.py): json-server, installed
with npm into testing/.json-server/ (a test tool, git-ignored), and the service started as
documented (`manage.py serve`); plus what they need before they start."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from testing.ports import free_port

ROOT = Path(__file__).resolve().parent.parent
JSON_SERVER_VERSION = "0.17.4"
START_SECONDS = 30.0


def require(program: str, hint: str) -> None:
    """Exit with one line unless `program` is on PATH."""
    if shutil.which(program) is None:
        raise SystemExit(f"{program} not found: {hint}")


def json_server_executable() -> Path:
    """json-server 0.17.4, installed with npm into testing/.json-server/ unless it is there."""
    from testing.json_server import JsonServerMissing, install

    try:
        return install(JSON_SERVER_VERSION)
    except JsonServerMissing as missing:
        raise SystemExit(str(missing)) from None


@dataclass(frozen=True)
class Server:
    name: str
    url: str  # base URL, no trailing slash
    process: subprocess.Popen
    log: Path


@contextmanager
def running(
    name: str, command: list[str], *, port: int, probe: str, log: Path, env: dict[str, str]
) -> Iterator[Server]:
    """Start a server, wait until `probe` answers 200, and stop it on the way out, whatever
    happens. Its own session: a Ctrl-C reaches this script only, which then stops it in order."""
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    server = Server(name, f"http://127.0.0.1:{port}", process, log)
    try:
        _wait_until_up(server, probe)
        yield server
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)  # its worker processes too
                process.wait()


def _wait_until_up(server: Server, probe: str) -> None:
    deadline = time.monotonic() + START_SECONDS
    while True:
        if server.process.poll() is not None:
            raise SystemExit(f"{server.name} exited at start:\n{tail(server.log)}")
        try:
            with urllib.request.urlopen(server.url + probe, timeout=2) as response:
                if response.status == 200:
                    return
        except (OSError, urllib.error.URLError):
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"{server.name} did not answer within {START_SECONDS:g} s")
        time.sleep(0.1)


def tail(path: Path, lines: int = 20) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


# Both servers log every request, each to its own file (`log`): `manage.py serve` writes an access
# log line per request, and json-server logs requests unless --quiet; a measurement of both as
# they run by default, at the cost of one log line per request each.


def json_server(db_json: Path, *, log: Path, env: dict[str, str]) -> AbstractContextManager[Server]:
    port = free_port()
    # --host: its default, localhost, may be ::1 only; the service and wrk use 127.0.0.1.
    command = [str(json_server_executable()), str(db_json), "--port", str(port)]
    command += ["--host", "127.0.0.1"]
    return running("json-server", command, port=port, probe="/posts/1", log=log, env=env)


def service(*, log: Path, env: dict[str, str]) -> AbstractContextManager[Server]:
    """The service as documented: `manage.py serve`, with its default workers and threads."""
    port = free_port()
    command = [sys.executable, "manage.py", "serve", "--bind", f"127.0.0.1:{port}"]
    return running("the service", command, port=port, probe="/health/", log=log, env=env)


def floor(
    *, bodies: Path, database_url: str, log: Path, env: Mapping[str, str]
) -> AbstractContextManager[Server]:
    """The floor (benchmarks/floor.py) under granian, with the service's workers and threads."""
    from news_project.serving import THREADS, WORKERS

    port = free_port()
    command = [str(Path(sys.executable).parent / "granian"), "--interface", "wsgi"]
    command += ["--workers", str(WORKERS), "--blocking-threads", str(THREADS)]
    command += [
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-ws",
        "benchmarks.floor:application",
    ]
    env = {**env, "FLOOR_BODIES": str(bodies), "FLOOR_DATABASE_URL": database_url}
    return running("the floor", command, port=port, probe="/news/posts/1/", log=log, env=env)


def manage(*arguments: str, env: dict[str, str]) -> str:
    """Run `manage.py ARGUMENTS` with `env`; exit with its error output if it fails."""
    command = [sys.executable, "manage.py", *arguments]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"manage.py {' '.join(arguments)} failed:\n{result.stderr.strip()}")
    return result.stdout


def flush_redis(url: str) -> None:
    """FLUSHDB the Redis database of `url` (redis://[:password@]host:port/db), in RESP over a
    plain socket: the benchmark needs no Redis client library."""
    parts = urlsplit(url)
    where = f"{parts.hostname or '127.0.0.1'}:{parts.port or 6379}/{parts.path.strip('/') or 0}"
    if parts.scheme != "redis":
        raise SystemExit(f"--redis-url must be redis://host:port/db, got {parts.scheme}://...")
    commands = [["SELECT", parts.path.strip("/") or "0"], ["FLUSHDB"]]
    if parts.password:
        commands.insert(0, ["AUTH", *filter(None, [parts.username]), parts.password])
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), 5) as s:
            replies = s.makefile("rb")
            for words in commands:
                encoded = [word.encode() for word in words]
                s.sendall(
                    f"*{len(encoded)}\r\n".encode()
                    + b"".join(b"$%d\r\n%s\r\n" % (len(word), word) for word in encoded)
                )
                reply = replies.readline().decode(errors="replace").strip()
                if not reply.startswith("+"):
                    raise SystemExit(f"Redis at {where} refused {words[0]}: {reply}")
    except OSError as exc:
        raise SystemExit(f"cannot reach Redis at {where}: {exc}") from None
