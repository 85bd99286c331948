"""Support for the test suite and the benchmarks; pytest collects nothing here.

- `rows`: posts and comments made directly in the database.
- `clients`: an API client with a real token; a GET through the whole WSGI application.
- `commands`: a management command called in the test's process: exit status, output, error.
- `processes`: manage.py in a subprocess on the suite's database; `manage.py serve` as deployed.
- `races`: API requests in threads, queued behind a row lock (PostgreSQL).
- `garbage_redis`: a server that answers every Redis command with the same reply.
- `waiting`: `wait_for`, a poll that fails naming what it waited for.
- `ports`: `free_port`.
- `background`: a call in a thread of its own, joined for what it returned.
- `run_lock`: the run lock held by another thread meanwhile, or lost under a run.
- `sync`: what sync's tests look at (the records the target must hold, the calls it got, an
  entity's sync state) and start from (a workload of pending changes, a target's own posts).
- `json_server`: the real json-server (0.17 and 1.0), installed with npm into a git-ignored folder
  and started on a free port, as a target for end-to-end tests, the soak and the benchmarks.
"""
