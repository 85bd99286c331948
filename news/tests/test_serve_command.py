"""`manage.py serve`: what it refuses with one line, and what it does as it starts and stops."""

import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest
import requests
from django.conf import settings
from django.core.management import CommandError, call_command

from news_project.serving import STOP_SECONDS
from testing.ports import free_port
from testing.processes import Served, manage_env
from testing.rows import make_post


def serve_fails(*args: str) -> subprocess.CompletedProcess:
    """`manage.py serve ARGS` run to its end (it must not start), with what it printed."""
    command = [sys.executable, "manage.py", "serve", *args]
    env = manage_env(DJANGO_DEBUG="0", DJANGO_ALLOWED_HOSTS="127.0.0.1")
    return subprocess.run(
        command, cwd=settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=30
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--bind", "8000"], "argument --bind: invalid HOST:PORT value: '8000'"),
        (
            ["--bind", "127.0.0.1:99999"],
            "argument --bind: invalid HOST:PORT value: '127.0.0.1:99999'",
        ),
        (["--workers", "0"], "argument --workers: invalid number from 1 to 256 value: '0'"),
        (
            ["--workers", "1000000"],
            "argument --workers: invalid number from 1 to 256 value: '1000000'",
        ),
        (
            ["--threads", "many"],
            "argument --threads: invalid number from 1 to 256 value: 'many'",
        ),
    ],
)
def test_a_malformed_option_is_refused_with_one_line_and_exit_2(args, message):
    result = serve_fails(*args)

    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"Error: {message} (manage.py serve --help lists the options)"
    ]


def test_threads_not_above_the_streams_a_worker_may_hold_are_refused(settings):
    settings.NEWS_MAX_STREAMS = 4

    with pytest.raises(
        CommandError, match=r"--threads 4 must be more than NEWS_MAX_STREAMS \(4\)"
    ) as refused:
        call_command("serve", "--threads", "4", "--bind", "127.0.0.1:1")

    assert refused.value.returncode == 2  # a usage error, as a malformed option


def test_an_address_in_use_is_refused_with_one_line_and_no_traceback():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        result = serve_fails("--bind", f"127.0.0.1:{port}")

    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"CommandError: cannot listen on 127.0.0.1:{port}: Address already in use"
    ]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_server_started_while_redis_is_down_says_so_in_the_words_of_a_start():
    """Not "a write committed": none has. It serves, and says what the start could not do."""
    down = f"redis://127.0.0.1:{free_port()}/0"
    server = Served("--workers", "1", REDIS_URL=down)
    try:
        said = server.log()
    finally:
        server.stop()

    assert "Read cache: Redis could not be given new generations as the server started" in said
    assert "a write committed" not in said


def test_a_database_not_migrated_is_refused_with_one_line_naming_the_fix(tmp_path):
    """Else every request but /health/ would be a 500 (no table)."""
    (tmp_path / "new.sqlite3").touch()  # there, with no tables (no file at all: test_manage)
    empty = f"sqlite:///{tmp_path / 'new.sqlite3'}"
    command = [sys.executable, "manage.py", "serve", "--bind", f"127.0.0.1:{free_port()}"]
    env = manage_env(DJANGO_DEBUG="0", DJANGO_ALLOWED_HOSTS="127.0.0.1", DATABASE_URL=empty)

    result = subprocess.run(
        command, cwd=settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 1
    assert re.fullmatch(
        r"CommandError: the database /\S+ \(DATABASE_URL\) has \d+ migrations not "
        r"applied: run manage\.py migrate first",
        result.stderr.strip(),
    )


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_server_starting_serves_nothing_another_stored_before_it(read_cache):
    post = make_post(title="Stored")
    with Served(REDIS_URL=read_cache.url) as first:
        url = f"{first.url}/news/posts/{post.pk}/"
        caches = [requests.get(url, timeout=5).headers.get("X-Cache") for _ in range(3)]
        assert caches[-1] == "hit"

        with Served(REDIS_URL=read_cache.url):
            answer = requests.get(url, timeout=5)  # the first server still runs

    assert (answer.status_code, answer.headers["X-Cache"]) == (200, "miss")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_sigterm_stops_the_server_and_its_workers():
    server = Served("--workers", "2")
    workers = server.workers()
    assert len(workers) == 2

    server.process.send_signal(signal.SIGTERM)
    # Within the workers' grace: a worker still starting (a busy machine) may be ended by it.
    code = server.process.wait(timeout=STOP_SECONDS + 15)
    server.stop()

    assert code == 0
    for pid in workers:
        with pytest.raises(ProcessLookupError):
            _still_running(pid)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_ctrl_c_in_a_terminal_stops_the_server_and_its_workers_within_seconds():
    with Served("--workers", "2") as server:
        workers = server.workers()
        # Both workers have started: one still starting may take the whole grace to end.
        deadline = time.monotonic() + 30
        while not all(f"Started worker-{n}" in server.log() for n in (1, 2)):
            assert time.monotonic() < deadline, server.log()
            time.sleep(0.05)

        started = time.monotonic()
        os.killpg(server.process.pid, signal.SIGINT)  # as a terminal does: every process of it
        code = server.process.wait(timeout=STOP_SECONDS + 15)
        took = time.monotonic() - started

    assert code == 0
    assert took < 5
    for pid in workers:
        with pytest.raises(ProcessLookupError):
            _still_running(pid)


def _still_running(pid: int) -> None:
    """Raise ProcessLookupError unless `pid` is a live process (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            state = stat.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        raise ProcessLookupError(pid) from None
    if state == "Z":
        raise ProcessLookupError(pid)


ACCESS_LINE = re.compile(
    r'^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}\] 127\.0\.0\.1 - "(?P<request>[^"]*)" '
    r"(?P<status>\d{3}) (?P<ms>\d+\.\d{3})$",
    re.MULTILINE,
)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("cached", [True, False], ids=["with-redis", "without-redis"])
def test_the_access_log_has_a_line_per_answer_naming_the_request_as_sent(cached, read_cache):
    post = make_post(title="Logged")
    env = {"REDIS_URL": read_cache.url} if cached else {}
    sent = [
        (f"/news/posts/{post.pk}/", 200),
        (f"/news/posts/{post.pk}/", 200),  # the second from the cache, when there is one
        ("/news/comments/?page=2&ordering=-id", 404),
        ("/news/posts/?title=a%20b%0Ac", 200),
        ("/news/nothing-here/", 404),
    ]
    with Served("--workers", "1", access_log=True, **env) as server:
        for path, status in sent:
            assert requests.get(server.url + path, timeout=5).status_code == status
        logged = _access_lines(server, len(sent))

    assert logged == [(f"GET {path} HTTP/1.1", str(status)) for path, status in sent]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_no_access_log_prints_no_line_per_request():
    with Served("--workers", "1") as server:
        requests.get(f"{server.url}/health/", timeout=5)
        time.sleep(0.5)
        assert ACCESS_LINE.findall(server.log()) == []
        assert "Started worker-1" in server.log()


def _access_lines(server: Served, count: int) -> list[tuple[str, str]]:
    """The first `count` lines of the server's access log, as (request line, status), but for
    the start's probes of /health/."""
    deadline = time.monotonic() + 10
    while True:
        lines = [
            (request, status)
            for request, status, _ in ACCESS_LINE.findall(server.log())
            if not request.startswith("GET /health/ ")
        ]
        if len(lines) >= count:
            return lines
        assert time.monotonic() < deadline, server.log()
        time.sleep(0.05)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_host_not_allowed_is_logged_in_one_line_without_a_traceback():
    with Served("--workers", "1") as server:
        answer = requests.get(f"{server.url}/news/posts/", headers={"Host": "evil.example"})
        time.sleep(0.2)  # the worker's log line written
        logged = server.log()

    assert (answer.status_code, answer.json()) == (400, {"detail": "Bad request."})
    assert "Invalid HTTP_HOST header: 'evil.example'." in logged
    assert "Traceback" not in logged


def test_the_database_cache_without_its_table_stops_the_start_with_one_line(tmp_path):
    """Before any worker starts: each would fail at import, and be started again, in a loop."""
    env = manage_env(
        DJANGO_DEBUG="0",
        DJANGO_ALLOWED_HOSTS="127.0.0.1",
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        DJANGO_CACHE="database",
    )
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v0"], cwd=settings.BASE_DIR, env=env, check=True
    )
    command = [sys.executable, "manage.py", "serve", "--bind", f"127.0.0.1:{free_port()}"]

    result = subprocess.run(
        command, cwd=settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.splitlines() == [
        "Error: DJANGO_CACHE=database, but the cache table 'django_cache' does not exist: run "
        "manage.py createcachetable (with DJANGO_CACHE=database set; without it, it creates "
        "nothing)"
    ]
    assert "Traceback" not in result.stdout
