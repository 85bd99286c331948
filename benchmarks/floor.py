"""The floor of the throughput benchmark (benchmarks/api_throughput.py): what the machine does
with no framework. A bare WSGI application, served by granian as the service is (2 workers of 4
threads):

- a GET answers the bytes the service answered to the same path and query, from memory
  (FLOOR_BODIES: a JSON file of {"path?query": "body"});
- a POST to /news/posts/ does what the service's create does at the least: one transaction on
  the thread's own psycopg connection (FLOOR_DATABASE_URL) that inserts the post and its
  change-log row, and answers 201 with the post.

    FLOOR_BODIES=bodies.json FLOOR_DATABASE_URL=postgres://... \\
        granian --interface wsgi --workers 2 --blocking-threads 4 benchmarks.floor:application
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import psycopg

INSERT_POST = """
    INSERT INTO news_post (user_id, title, body, created_by_id, created_at, updated_at)
    VALUES (%s, %s, %s, NULL, now(), now()) RETURNING id
"""
INSERT_EVENT = """
    INSERT INTO sync_modelevent (entity_table, entity_pk, type, logged_at)
    VALUES ('news_post', %s, 'CREATED', now())
"""
JSON = ("Content-Type", "application/json")

_bodies = {
    where: body.encode()
    for where, body in json.loads(Path(os.environ["FLOOR_BODIES"]).read_text()).items()
}
_local = threading.local()


def _connection() -> psycopg.Connection:
    if getattr(_local, "connection", None) is None:
        _local.connection = psycopg.connect(os.environ["FLOOR_DATABASE_URL"], autocommit=True)
    return _local.connection


def application(environ: dict, start_response):
    if environ["REQUEST_METHOD"] == "POST":
        data = json.loads(environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0)))
        with _connection().transaction(), _connection().cursor() as cursor:
            cursor.execute(INSERT_POST, (data.get("userId", 1), data["title"], data["body"]))
            (post_id,) = cursor.fetchone()
            cursor.execute(INSERT_EVENT, (post_id,))
        body = json.dumps({"id": post_id, **data}).encode()
        start_response("201 Created", [JSON, ("Content-Length", str(len(body)))])
        return [body]
    where = environ["PATH_INFO"] + (f"?{q}" if (q := environ.get("QUERY_STRING")) else "")
    if (body := _bodies.get(where)) is None:
        start_response("404 Not Found", [JSON, ("Content-Length", "2")])
        return [b"{}"]
    start_response("200 OK", [JSON, ("Content-Length", str(len(body)))])
    return [body]
