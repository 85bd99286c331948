"""The API as deployed: granian serving news_project.asgi, started by `manage.py serve`.

Worker processes of a few threads each. granian's own I/O (Rust, asynchronous) reads requests,
their bodies included, and writes answers, so a thread is held only while Django computes an
answer: neither a client that sends its body slowly nor one that reads a finished answer slowly
holds one. A `?all=true` stream is produced by the thread that serves it, as fast as its client
reads; news/streams.py caps them per process, so threads stay free for everything else.
"""

from __future__ import annotations

import signal
import socket
from functools import partial

from django.conf import settings
from django.db import connection, connections
from django.db.migrations.executor import MigrationExecutor
from django.utils.module_loading import import_string
from granian.constants import HTTPModes, Interfaces
from granian.server import Server

from news.cache import start_fresh
from news_project.startup import check_cache_tables

# Called in each worker with its number of threads (news_project/asgi.py).
APPLICATION = "news_project.asgi.application_for"
# `serve`'s defaults: a worker per CPU of a 2-CPU machine, each with a few threads.
WORKERS, THREADS = 2, 4
# Seconds a worker has, once told to stop, to finish the answers it is writing.
STOP_SECONDS = 30


class ServingError(Exception):
    """The server cannot start as asked; the message says why."""


class ServingUsageError(ServingError):
    """The options asked for cannot go together: a usage error."""


def serve(*, host: str, port: int, workers: int, threads: int, access_log: bool = True) -> None:
    """Serve until stopped (SIGTERM or SIGINT: answers being written are finished first)."""
    if threads <= (streams := settings.NEWS_MAX_STREAMS):
        raise ServingUsageError(
            f"--threads {threads} must be more than NEWS_MAX_STREAMS ({streams}): "
            "streams of ?all=true would leave no thread for other requests"
        )
    try:
        _check_address(host, port)
    except OSError as exc:
        raise ServingError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    # A database out of reach stops the start, in one line naming it (manage.py), rather than
    # a server that answers every request with an error.
    connection.ensure_connection()
    # Nor a database whose tables are not all there: every request but /health/ would fail.
    executor = MigrationExecutor(connection)
    if waiting := executor.migration_plan(executor.loader.graph.leaf_nodes()):
        raise ServingError(
            f"the database {connection.settings_dict['NAME']} (DATABASE_URL) has {len(waiting)} "
            "migrations not applied: run manage.py migrate first"
        )
    # Nor a cache table that is not there (DJANGO_CACHE=database): each worker would stop at
    # its start, and be started again, in a loop.
    check_cache_tables()
    # Nothing stored while this service ran without REDIS_URL, taking writes Redis never heard
    # of, is served: every table gets a new generation before any worker answers.
    start_fresh()
    connections.close_all()  # the workers are forked from this process: they open their own
    server = Server(
        APPLICATION,
        address=host,
        port=port,
        interface=Interfaces.ASGINL,
        workers=workers,
        http=HTTPModes.http1,
        websockets=False,
        # The access log is the application's own (news_project/access_log.py): granian's
        # costs a sixth of a cached read.
        log_access=False,
        respawn_failed_workers=True,
        workers_kill_timeout=STOP_SECONDS,
    )
    server.serve(target_loader=partial(_application, threads, access_log), wrap_loader=False)


def _application(threads: int, access_log: bool):
    """The application a worker serves, loaded in the worker, which leaves SIGINT to the main
    process.

    Ctrl-C in a terminal signals every process of the server. The main process then stops the
    workers (SIGTERM: each finishes the answers it is writing); a worker that took the SIGINT
    itself would end at once and be started again, and the main process would then wait its
    full STOP_SECONDS for the worker still starting. Blocked in this thread before the worker
    starts its own, SIGINT is blocked in all of them.
    """
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    return import_string(APPLICATION)(threads, access_log=access_log)


def _check_address(host: str, port: int) -> None:
    """Raise OSError, as granian would with a traceback, if host:port cannot be listened on."""
    family, kind, protocol, _, where = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    with socket.socket(family, kind, protocol) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(where)
