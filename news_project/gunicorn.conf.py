"""How gunicorn serves the API: the Dockerfile, docker-compose.yml, the tests and the benchmarks
start it with `gunicorn --config news_project/gunicorn.conf.py news_project.wsgi:application`.
Options on that command line override these, e.g. `--workers 8` on a 4-CPU machine.

Threaded workers (gthread): a request holds a thread, not a process, so slow clients, or a long
`?all=true` stream, tie up one thread each while the other threads go on serving. Two worker
processes per CPU (4 on 2 CPUs) of 4 threads each: the threads cover the time spent waiting on
PostgreSQL, Redis and sockets, and the kernel, not the GIL, shares the CPUs between processes
(on 2 CPUs, 4 x 4 answered a cached read faster and with a lower p99 than 2 x 8 or 2 x 4).
"""

bind = "0.0.0.0:8000"
worker_class = "gthread"
workers = 4
threads = 4
# In a gthread worker this is the heartbeat of the worker's main loop, not a limit on a request:
# a stream runs as long as its client reads. A stuck worker is still replaced after 30 s.
timeout = 30
# Idle keep-alive connections wait in the main loop, not in a thread.
keepalive = 5
# Each worker listens on its own socket (SO_REUSEPORT) and the kernel spreads connections
# evenly; with one shared socket, one worker can take most of them and their threads then wait
# on each other (p99 of a cached read: about 20 ms with it, 100-200 ms without, on 2 CPUs).
reuse_port = True
accesslog = "-"
# No control socket (gunicorn 27's gunicornc): its default path is one per user, shared by every
# gunicorn the user runs (the tests run several at once); signals still manage the server.
control_socket_disable = True


def on_starting(server) -> None:
    """Once, in the master, before any worker serves: every table gets a new generation in the
    cache of reads (news/cache/), so that nothing stored while this service ran without
    REDIS_URL, taking writes Redis never heard of, is served."""
    import os

    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "news_project.settings")
    django.setup()
    from news.cache import start_fresh

    start_fresh()
