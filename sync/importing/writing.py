"""Writing the checked records: one transaction, change recording off, states and sequences."""

from __future__ import annotations

import json

from django.core.management.color import no_style
from django.db import connection, models, transaction
from django.utils import timezone
from tqdm import tqdm

from news.models import Comment, Post
from news.signals import rows_created
from sync.batching import chunked
from sync.errors import ImportRefused
from sync.models import EntitySyncState, SyncTarget
from sync.planner import Kind
from sync.recording import recording_disabled
from sync.target import FIELDS, TABLES, RemoteId, parent_remote_key, record_hash, remote_key

# The largest id the database's bigint keys hold.
MAX_LOCAL_ID = 2**63 - 1


def refuse_unless_empty() -> None:
    posts, comments = Post.objects.count(), Comment.objects.count()
    if posts or comments:
        raise ImportRefused(
            f"The database already has {count(posts, 'post')} and {count(comments, 'comment')}; "
            "the initial import only runs on an empty database. Nothing was changed."
        )


def write(
    posts: list[dict], comments: list[dict], bar: tqdm, batch_size: int, *, target: str
) -> None:
    """Insert the checked records (ids as the target gave them) under local ids, with a sync
    state each that keeps the remote id, and name `target` as the one the state describes."""
    post_rows, post_ids = _with_local_ids(posts)
    comment_rows, _ = _with_local_ids(comments)
    for row in comment_rows:
        row["post_id"] = post_ids[remote_key(row["post_id"])]
    states = _delivered_states(posts, post_rows, comments, comment_rows)
    _insert(post_rows, comment_rows, states, bar, batch_size, target=target)


def _with_local_ids(records: list[dict]) -> tuple[list[dict], dict[str, int]]:
    """The rows under local ids, and each remote id's local one (by remote key).

    A record whose id is a whole number (7, or "7") keeps it, as json-server 0.17 and the
    public JSONPlaceholder give them; the others (json-server 1.0's "Q2rmeYny5Gc", UUIDs) get
    the next free ids after the largest kept one, in the target's order.
    """
    kept = {r_key: int(r_key) for r in records if _keepable(r_key := remote_key(r["id"]))}
    next_id = max(kept.values(), default=0) + 1
    local: dict[str, int] = {}
    rows = []
    for record in records:
        key = remote_key(record["id"])
        if key in kept:
            local[key] = kept[key]
        else:
            local[key], next_id = next_id, next_id + 1
        rows.append({**record, "id": local[key]})
    return rows, local


def _keepable(key: str) -> bool:
    return key.isdigit() and not key.startswith("0") and int(key) <= MAX_LOCAL_ID


def _insert(
    posts: list[dict],
    comments: list[dict],
    states: list[dict],
    bar: tqdm,
    batch_size: int,
    *,
    target: str,
) -> None:
    postgres = connection.vendor == "postgresql"
    with transaction.atomic(), recording_disabled():
        if postgres:
            # Keep API writes out until the import commits; reads go on as usual.
            tables = ", ".join(connection.ops.quote_name(m._meta.db_table) for m in (Post, Comment))
            with connection.cursor() as cursor:
                cursor.execute(f"LOCK TABLE {tables} IN SHARE ROW EXCLUSIVE MODE")
        refuse_unless_empty()
        # What the target holds of each row, so the sync knows it is there and unchanged.
        EntitySyncState.objects.filter(entity_table__in=TABLES.values()).delete()
        for model, rows in ((Post, posts), (Comment, comments), (EntitySyncState, states)):
            if postgres:
                _copy_rows(model, rows, bar, batch_size)
                if model is not EntitySyncState:
                    # COPY sends no signal: announce the rows as bulk_create would (the cache of
                    # reads listens; the change log does not, recording being off).
                    pks = [values["id"] for values in rows]
                    rows_created.send(sender=model, pks=pks, using=connection.alias)
            else:
                for batch in chunked(rows, batch_size):
                    model.objects.bulk_create([model(**values) for values in batch])
                    bar.update(len(batch))
        reset_sequences()
        SyncTarget.adopt(target)


def _delivered_states(
    posts: list[dict], post_rows: list[dict], comments: list[dict], comment_rows: list[dict]
) -> list[dict]:
    """One sync state per imported row: on the target under the id it gave, as imported."""
    states = []
    for kind, records, rows in (
        (Kind.POST, posts, post_rows),
        (Kind.COMMENT, comments, comment_rows),
    ):
        table, fields = TABLES[kind], FIELDS[kind].items()
        for values, row in zip(records, rows, strict=True):
            record = {name: values.get(attribute) for name, attribute in fields}
            remote_id: RemoteId = values["id"]
            states.append(
                {
                    "entity_table": table,
                    "entity_pk": row["id"],
                    "remote_id": remote_id,
                    "remote_key": remote_key(remote_id),
                    "delivered_hash": record_hash(record),
                    "remote_parent_key": parent_remote_key(record),
                }
            )
    return states


def _copy_rows(model: type[models.Model], rows: list[dict], bar: tqdm, batch_size: int) -> None:
    """Write the rows bulk_create would write, with PostgreSQL's COPY: several times faster.

    bulk_create spends most of its time preparing each value of each row in Python (120,000
    rows: about 9 s against about 1 s for COPY). Every column gets what bulk_create would give
    it: the checked value, else the field's default; auto_now(_add) columns get the import time.
    """
    now = timezone.now()
    # An auto id that the rows leave out is the database's to give.
    fields = [
        field
        for field in model._meta.concrete_fields
        if not (field.primary_key and rows and field.attname not in rows[0])
    ]
    fill = {
        field.attname: now
        if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False)
        else field.get_default()
        for field in fields
    }
    names = [field.attname for field in fields]
    quote = connection.ops.quote_name
    sql = (
        f"COPY {quote(model._meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) "
        "FROM STDIN"
    )
    # JSON columns take JSON text (a string id is "Q2rmeYny5Gc" in quotes).
    json_columns = {f.attname for f in fields if isinstance(f, models.JSONField)}
    with connection.cursor() as cursor, cursor.copy(sql) as copy:
        for batch in chunked(rows, batch_size):
            for values in batch:
                copy.write_row(
                    [
                        _json_text(values.get(name, fill[name]))
                        if name in json_columns
                        else values.get(name, fill[name])
                        for name in names
                    ]
                )
            bar.update(len(batch))


def _json_text(value) -> str | None:
    return None if value is None else json.dumps(value)


def reset_sequences() -> None:
    """Move the id sequences past the largest imported id (a no-op where the database does)."""
    statements = connection.ops.sequence_reset_sql(no_style(), [Post, Comment])
    with connection.cursor() as cursor:
        for sql in statements:
            cursor.execute(sql)


def count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"
