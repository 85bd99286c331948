"""A redis-server of a test's own: what a Redis with persistence does when it restarts."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import redis

from testing.ports import free_port
from testing.waiting import wait_for


class RedisServer:
    """redis-server on a free port of 127.0.0.1, keeping its snapshot (dump.rdb) in `directory`:
    `save()` takes one, and `restart()` starts the server again from it, as a Redis with RDB
    persistence comes back after a crash or a restart, without what it took since."""

    def __init__(self, directory: Path, *options: str) -> None:
        if shutil.which("redis-server") is None:
            pytest.skip("needs redis-server on PATH")
        self.directory, self.port = directory, free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.options = options  # more of redis-server's options, e.g. "--rename-command"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port)]
            + ["--dir", str(self.directory), "--dbfilename", "dump.rdb"]
            + ["--save", "", "--appendonly", "no", "--logfile", str(self.directory / "log")]
            + list(self.options),
            stdout=subprocess.DEVNULL,
        )
        wait_for(self._answers, timeout=10, what=f"redis-server on port {self.port}")

    def save(self) -> None:
        redis.Redis.from_url(self.url).save()

    def restart(self) -> None:
        """Stopped without a save (as a crash leaves it), then started from the last save."""
        self.stop()
        self.start()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def _answers(self) -> bool:
        try:
            return bool(redis.Redis.from_url(self.url, socket_timeout=0.5).ping())
        except redis.RedisError:
            return False
