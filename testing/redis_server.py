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

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=10)

    def save(self) -> None:
        self.client().save()

    def follow(self, leader: RedisServer | None) -> None:
        """Become a replica of `leader` and wait until its data is here (a full resync); None:
        a master again (REPLICAOF NO ONE), which gives it a new replication id."""
        if leader is None:
            self.client().execute_command("REPLICAOF", "NO", "ONE")
            return
        self.client().execute_command("REPLICAOF", "127.0.0.1", str(leader.port))
        wait_for(
            lambda: self.client().info("replication").get("master_link_status") == "up",
            timeout=10,
            what=f"redis-server on port {self.port} in step with port {leader.port}",
        )

    def cut_off(self) -> None:
        """A replica that lost its master: it keeps what it has, and takes no writes."""
        self.client().execute_command("REPLICAOF", "127.0.0.1", str(free_port()))

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
