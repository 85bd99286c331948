"""An in-memory HTTP server that behaves like JSONPlaceholder served by json-server.

A tool, not part of the product: the test suite (the `fake_target` fixture), the benchmarks
and demos (`python -m fake_target --port 3000 --posts 100`) use it; product code never imports
it, and the app image leaves it out (it has an image of its own). It needs no Django.

Modules: `target` (FakeTarget: lifecycle, records, request log), `routes` (json-server),
`faults` (misbehaviour), `server` (HTTP plumbing), `wire` (JSON), `data` (generated records),
`cli` (`python -m fake_target`).

Routes: those of json-server for /posts and /comments (JSON bodies, camelCase fields; posts
`userId, id, title, body`, comments `postId, id, name, email, body`), listed in `routes`.

As in json-server, a POST keeps the `id` it is sent and otherwise gets max(id) + 1 (always, with
`assign_ids=True`, like an API that picks its own ids). With `stores_nothing=True` it behaves like
the public JSONPlaceholder site: every write is answered but nothing is kept; a POST answers
id = count + 1 (101 for 100 posts), a PUT of an id it does not have answers 500, a DELETE 200.
A duplicate id answers 500 `{"error": "Insert failed, duplicate id"}`. Stricter than json-server:
ids must be JSON integers (400 otherwise) and a body must be a JSON object (400 otherwise).
Record fields are not checked, as json-server does not check them.

State lives in `server.posts` and `server.comments` ({id: record}); every request is appended to
`server.requests` (`connections_opened` and `max_in_flight` count connections and parallel
requests). Misbehaviour is switched on with `fail`, `answer`, `drop`, `stall` and `drip`,
and a latency for every answer with `server.latency`. Each handler runs in its own thread, so
concurrent clients are served in parallel; HTTP/1.1 keep-alive works (every answer has a
Content-Length).
"""

from fake_target.faults import Fault
from fake_target.target import FakeTarget, RecordedRequest

__all__ = ["FakeTarget", "Fault", "RecordedRequest"]
