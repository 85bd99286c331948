"""python -m fake_target: a port already taken is one line, and so is a value that cannot be;
SIGTERM stops it cleanly."""

import signal
import socket
import subprocess
import sys

import pytest
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
        "Stop that process, or pick another port with --port (under make: TARGET_PORT=...)."
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


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--port", "99999"], "argument --port: must be a port from 0 to 65535, got '99999'"),
        (["--port", "-1"], "argument --port: must be a port from 0 to 65535, got '-1'"),
        (["--posts", "-5"], "argument --posts: must be 0 or more, got '-5'"),
        (
            ["--comments-per-post", "-1"],
            "argument --comments-per-post: must be 0 or more, got '-1'",
        ),
        (["--latency", "-1"], "argument --latency: must be 0 or more seconds, got '-1'"),
        (["--latency", "nan"], "argument --latency: must be 0 or more seconds, got 'nan'"),
        (["--rate-limit", "-2"], "argument --rate-limit: must be 0 or more a second, got '-2'"),
    ],
)
def test_a_value_that_cannot_be_is_one_line_and_exit_2(args, error):
    result = subprocess.run(
        [sys.executable, "-m", "fake_target", *args], capture_output=True, text=True, timeout=30
    )

    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.splitlines() == [
        f"Error: {error} (python -m fake_target --help lists the options)"
    ]
