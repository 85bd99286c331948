"""python -m fake_target: a port already taken is one line; SIGTERM stops it cleanly."""

import signal
import socket
import subprocess
import sys

import requests

from testing.ports import free_port


def start(port: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "fake_target", "--port", str(port), "--posts", "2"]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_port_already_taken_is_said_in_one_line():
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]

        process = start(port)
        out, err = process.communicate(timeout=30)

    assert process.returncode == 1
    assert out == ""
    assert err.splitlines() == [
        f"Error: port {port} on 127.0.0.1 is already in use (a fake target already running?). "
        "Stop that process, or pick another port with --port."
    ]


def test_sigterm_stops_it_with_exit_status_0():
    port = free_port()
    process = start(port)
    try:
        banner = process.stdout.readline()
        assert requests.get(f"http://127.0.0.1:{port}/posts/1", timeout=5).status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=10)

    assert banner.startswith("Fake target serving 2 posts")
    assert (process.returncode, err) == (0, "")
