"""manage.py in a subprocess, on the suite's database: run to the end, started in the
background, or `serve` as it is deployed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

from django.conf import settings
from django.db import connection

from testing.ports import free_port


def database_url() -> str:
    """A DATABASE_URL that reaches the database the tests run on."""
    db = connection.settings_dict
    if connection.vendor != "postgresql":
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] or ""
    if db.get("PASSWORD"):
        auth += f":{db['PASSWORD']}"
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def manage_env(*, clean: bool = False, **env: str) -> dict[str, str]:
    """The environment of a manage.py subprocess: the suite's, on its database; or, `clean`,
    only PATH and the variables given. Never a developer's .env (DJANGO_ENV_FILE empty)."""
    if clean:
        return {"PATH": os.environ.get("PATH", ""), "DJANGO_ENV_FILE": "", **env}
    base = dict(os.environ)
    base.update(
        DJANGO_SETTINGS_MODULE="news_project.settings",
        DJANGO_SECRET_KEY=settings.SECRET_KEY,
        DJANGO_ENV_FILE="",
        PYTHONUNBUFFERED="1",
    )
    if connection.vendor == "postgresql":
        base["DATABASE_URL"] = database_url()
    return {**base, **env}


def run_manage(*args: str, clean: bool = False, **env: str) -> subprocess.CompletedProcess:
    """Run manage.py with these arguments to the end and capture what it printed."""
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=settings.BASE_DIR,
        env=manage_env(clean=clean, **env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def start_manage(*args: str, **env: str) -> subprocess.Popen:
    """Start manage.py in the background, its output captured."""
    return subprocess.Popen(
        [sys.executable, "manage.py", *args],
        cwd=settings.BASE_DIR,
        env=manage_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


class Served:
    """`manage.py serve` serving the suite's database, on a free port; `args` are more of its
    options (`--workers 1`), `env` more of its environment. Its access log is off unless
    `access_log`."""

    def __init__(self, *args: str, access_log: bool = False, **env: str) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        command = [sys.executable, "manage.py", "serve", "--bind", f"127.0.0.1:{port}"]
        # A file, not a pipe: a pipe nobody reads would stop the server once full.
        self.errors = tempfile.TemporaryFile("w+")  # noqa: SIM115 - closed by stop()
        self.process = subprocess.Popen(
            [*command, *([] if access_log else ["--no-access-log"]), *args],
            cwd=settings.BASE_DIR,
            env=manage_env(DJANGO_DEBUG="0", DJANGO_ALLOWED_HOSTS="127.0.0.1", **env),
            # granian's own log (standard output) and Django's (standard error), in one file.
            stdout=self.errors,
            stderr=self.errors,
            start_new_session=True,  # its workers with it: stop() can kill them all
        )
        deadline = time.monotonic() + 20
        while not self.answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                said = self.log()
                self.stop()
                raise AssertionError(f"manage.py serve did not start: {said}")
            time.sleep(0.05)

    def address(self) -> tuple[str, int]:
        host, port = self.url.removeprefix("http://").split(":")
        return host, int(port)

    def answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/health/", timeout=1) as response:
                return response.status == 200
        except OSError:
            return False

    def log(self) -> str:
        """What the server printed so far (granian's start and stop lines, the access log,
        Django's errors)."""
        self.errors.seek(0)
        return self.errors.read()

    def workers(self) -> list[int]:
        children = f"/proc/{self.process.pid}/task/{self.process.pid}/children"
        with open(children) as listing:
            return [int(pid) for pid in listing.read().split()]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.errors.close()

    def __enter__(self) -> Served:
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()
