"""Exact row counts of posts and comments without counting the table (PostgreSQL).

A page of a list says how many rows the whole list has. COUNT(*) reads every row: at a million
comments it costs more than the page itself. So on PostgreSQL, statement-level triggers
(migration 0002) append to `news_rowcount` the number of rows each INSERT or DELETE statement
added or removed, in that statement's transaction, and every 64th such delta folds the table's
deltas into one row. The sum of a table's deltas is then its row count, exact under concurrency
just as COUNT(*) is (a reader sees the deltas of committed transactions only), for the price of
summing a few dozen small rows. Inserting a delta takes no lock that another writer waits for.

Every write reaches the triggers: the API, the admin, bulk writes, COPY (the import), raw SQL;
TRUNCATE (flush) empties the table's deltas. Other databases (SQLite) count the table.
"""

from django.db import connections
from django.db.models import QuerySet, Sum

from news.models import Comment, Post, RowCount

COUNTED = frozenset({Post, Comment})


def counted_rows(queryset: QuerySet) -> int | None:
    """The number of rows of an unfiltered QuerySet of posts or comments, from the deltas; None
    when it must be counted the usual way (a filter, another model, another database)."""
    if queryset.model not in COUNTED or queryset.query.where or queryset.query.is_sliced:
        return None
    if connections[queryset.db].vendor != "postgresql":
        return None
    deltas = RowCount.objects.using(queryset.db).filter(table_name=queryset.model._meta.db_table)
    return deltas.aggregate(rows=Sum("rows"))["rows"] or 0
