"""The real json-server as a target: installed with npm into testing/.json-server/<version>/
(git-ignored) the first time it is asked for, and started on 127.0.0.1 on a free port with a
db.json of its own.

json-server 0.17.4 keeps the ids it is sent and deletes a post's comments with it; 1.0.0-beta.15
(the version its README documents) gives every new record a random string id, reads the numbers
of its file as strings ("1"), and leaves a deleted post's comments in place.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from testing.ports import free_port

ROOT = Path(__file__).resolve().parent.parent
INSTALL_DIR = ROOT / "testing" / ".json-server"
VERSIONS = {"0.17": "0.17.4", "1.0": "1.0.0-beta.15"}
START_SECONDS = 30.0


class JsonServerMissing(RuntimeError):
    """json-server cannot be installed or run here (no node or npm, or npm failed)."""


def install(version: str) -> Path:
    """json-server `version`'s executable, installed with npm unless it is there already."""
    version = VERSIONS.get(version, version)
    folder = INSTALL_DIR / version
    package = folder / "node_modules" / "json-server" / "package.json"
    try:
        installed = json.loads(package.read_text())["version"]
    except (OSError, ValueError, KeyError):
        installed = None
    if installed != version:
        if shutil.which("npm") is None:
            raise JsonServerMissing("npm not found (apt-get install npm)")
        print(f"installing json-server {version} into {folder.relative_to(ROOT)}/ with npm")
        command = ["npm", "install", "--prefix", str(folder), "--no-audit", "--no-fund"]
        command += ["--loglevel", "error", f"json-server@{version}"]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            last = (result.stderr or result.stdout).strip().splitlines()[-1:]
            raise JsonServerMissing(f"npm install json-server@{version} failed: {last}")
    if shutil.which("node") is None:
        raise JsonServerMissing("node not found (apt-get install nodejs)")
    return folder / "node_modules" / ".bin" / "json-server"


@dataclass
class JsonServer:
    """A running json-server: its base URL, and what it holds (read over HTTP)."""

    version: str
    url: str
    process: subprocess.Popen
    log: Path

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=10) as answer:
            return json.loads(answer.read())

    def state(self) -> dict[str, list[dict]]:
        return {name: self.get(f"/{name}") for name in ("posts", "comments")}

    def post(self, path: str, record: dict) -> dict:
        request = urllib.request.Request(
            self.url + path,
            data=json.dumps(record).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            return json.loads(answer.read())


@contextmanager
def running(version: str, data: dict[str, list[dict]]) -> Iterator[JsonServer]:
    """Start json-server `version` serving `data` (posts and comments), stop it on the way out."""
    executable = install(version)
    folder = Path(tempfile.mkdtemp(prefix="json-server-"))
    (folder / "public").mkdir()  # json-server 1.0 serves static files from ./public
    db = folder / "db.json"
    db.write_text(
        json.dumps({"posts": data.get("posts", []), "comments": data.get("comments", [])})
    )
    port = free_port()
    log = folder / "json-server.log"
    # NODE_ENV=production: json-server 1.0 watches its file for changes otherwise.
    env = {**os.environ, "NODE_ENV": "production"}
    command = [str(executable), str(db), "--port", str(port), "--host", "127.0.0.1"]
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, cwd=folder, env=env, stdout=output, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    server = JsonServer(VERSIONS.get(version, version), f"http://127.0.0.1:{port}", process, log)
    try:
        _wait_until_up(server)
        yield server
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        shutil.rmtree(folder, ignore_errors=True)


def _wait_until_up(server: JsonServer) -> None:
    deadline = time.monotonic() + START_SECONDS
    while True:
        if server.process.poll() is not None:
            tail = server.log.read_text(errors="replace").strip().splitlines()[-5:]
            raise JsonServerMissing(f"json-server {server.version} exited at start: {tail}")
        try:
            server.get("/posts")
            return
        except (OSError, urllib.error.URLError, ValueError):
            pass
        if time.monotonic() > deadline:
            raise JsonServerMissing(f"json-server did not answer within {START_SECONDS:g} s")
        time.sleep(0.1)
