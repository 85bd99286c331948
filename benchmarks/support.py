"""Plumbing shared by the benchmark scripts: Django set-up on a throwaway PostgreSQL database,
a fake target served from a process of its own, and a child process measured."""

import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.managers import BaseManager, BaseProxy
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "news_project.settings")
os.environ.setdefault("DJANGO_SECRET_KEY", "benchmark-only-insecure-key")


@contextmanager
def throwaway_database(suffix: str) -> Iterator[None]:
    """Set Django up on `<DATABASE_URL's name>_<suffix>`, created and migrated here, then dropped.

    Exits with a one-line message unless DATABASE_URL points at PostgreSQL.
    """
    import django
    from django.conf import settings

    database = settings.DATABASES["default"]
    if not database["ENGINE"].endswith(".postgresql"):
        raise SystemExit("DATABASE_URL must point at PostgreSQL (postgres://...)")
    database["TEST"] = {"NAME": f"{database['NAME']}_{suffix}"}
    django.setup()

    from django.test.utils import (
        setup_databases,
        setup_test_environment,
        teardown_databases,
        teardown_test_environment,
    )

    setup_test_environment(debug=False)
    old_config = setup_databases(verbosity=0, interactive=False)
    try:
        yield
    finally:
        teardown_databases(old_config, verbosity=0)
        teardown_test_environment()


class TargetProxy(BaseProxy):
    """A FakeTarget of another process: the part of its interface a benchmark drives."""

    _exposed_ = (
        "load",
        "load_generated",
        "state",
        "calls",
        "reset_log",
        "fail",
        "clear_faults",
        "__getattribute__",
        "__setattr__",
    )

    @property
    def url(self) -> str:
        return self._callmethod("__getattribute__", ("url",))

    def load(self, *, posts: list[dict], comments: list[dict]) -> None:
        self._callmethod("load", (), {"posts": posts, "comments": comments})

    def load_generated(self, posts: int, *, comments_per_post: int, seed: int = 0) -> None:
        """Serve generated records, made in the target's process (nothing crosses the pipe)."""
        options = {"comments_per_post": comments_per_post, "seed": seed}
        self._callmethod("load_generated", (posts,), options)

    def state(self) -> dict[str, list[dict]]:
        return self._callmethod("state")

    def calls(self, method: str | None = None, path_prefix: str | None = None) -> list[Any]:
        return self._callmethod("calls", (method, path_prefix))

    def reset_log(self) -> None:
        self._callmethod("reset_log")

    def fail(self, status: int, **options: Any) -> None:
        self._callmethod("fail", (status,), options)

    def clear_faults(self) -> None:
        self._callmethod("clear_faults")

    def set(self, name: str, value: Any) -> None:
        """Set an attribute of the target (latency, rate_limit)."""
        self._callmethod("__setattr__", (name, value))


def _started_target(**options: Any):
    from fake_target import FakeTarget

    return FakeTarget(**options).start()


class _TargetProcess(BaseManager):
    pass


_TargetProcess.register("FakeTarget", _started_target, proxytype=TargetProxy)


@contextmanager
def target_process(**options: Any) -> Iterator[TargetProxy]:
    """A FakeTarget(**options) serving from a process of its own, as a real target does, so that
    its threads do not compete with the measured code for the interpreter lock; ended on exit."""
    # spawn: the child starts clean, without this process's threads and database connections.
    manager = _TargetProcess(ctx=multiprocessing.get_context("spawn"))
    manager.start()
    try:
        yield manager.FakeTarget(**options)
    finally:
        manager.shutdown()


@dataclass(frozen=True)
class Measured:
    """A child process as it ran: exit code, output, wall seconds, peak RSS and CPU seconds."""

    exit_code: int
    output: str
    wall: float
    peak_kib: int
    cpu: float


def run_measured(command: list[str], env: dict[str, str], cwd: Path) -> Measured:
    """Run `command` to its end, reaped here: wait4 gives this child's own resource usage."""
    with tempfile.TemporaryFile("w+") as output:
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=output, stderr=output)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - started
        output.seek(0)
        return Measured(
            process.returncode,
            output.read(),
            wall,
            usage.ru_maxrss,
            usage.ru_utime + usage.ru_stime,
        )
