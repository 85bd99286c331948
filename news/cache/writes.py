"""Writes tell the read cache what they change, before they commit and after (news.cache)."""

from __future__ import annotations

from collections.abc import Iterable

from django.db import connections
from django.db.models import Model
from django.db.models.signals import (
    post_delete,
    post_migrate,
    post_save,
    pre_delete,
    pre_save,
)

from news.cache.store import ReadCacheStore, get_store, new_token
from news.routes import cached_tables
from news.signals import rows_created, rows_updated


def tables_written(tables: Iterable[str], *, using: str) -> None:
    """Tell Redis of a write of these tables: before the transaction on `using` commits (once a
    table a transaction), then once it has (at once for a write outside a transaction, which has
    committed already). Raises CacheUnavailable, which rolls the write back, if Redis cannot be
    told before the commit."""
    store = get_store()
    if store is None:
        return
    connection = connections[using]
    if not connection.in_atomic_block:
        store.written(set(tables))
        return
    pending = _pending_write(connection)
    if pending is None:
        pending = _PendingWrite(store)
        connection.on_commit(pending)
    new = set(tables) - pending.tables
    if new:
        # Named before Redis is asked: whatever happens, the commit gives them new generations.
        pending.tables |= new
        store.writing(new, pending.name)


def start_fresh() -> None:
    """New generations for every table, at a server's start: answers stored while this service
    ran without REDIS_URL (and took writes Redis never heard of) are not served."""
    if (store := get_store()) is not None:
        store.written(cached_tables(), doing="be given new generations as the server started")


class _PendingWrite:
    """The on_commit callback of one transaction, with the tables it writes."""

    def __init__(self, store: ReadCacheStore) -> None:
        self.store = store
        self.name = new_token()
        self.tables: set[str] = set()

    def __call__(self) -> None:
        self.store.written(self.tables, self.name)


def _pending_write(connection) -> _PendingWrite | None:
    """The callback already waiting for this transaction's commit, if any. A rolled-back
    transaction or savepoint drops its callbacks (its lease then runs out by itself)."""
    for entry in connection.run_on_commit:
        if isinstance(entry[1], _PendingWrite):
            return entry[1]
    return None


def on_writing(sender, instance, using, **kwargs) -> None:
    """A save() or delete() outside a transaction commits as it runs: Redis is told before it
    runs (refused with CacheUnavailable if it cannot be), and after, by on_written."""
    store = get_store()
    if store is not None and not connections[using].in_atomic_block:
        instance._news_cache_write = new_token()
        store.writing({sender._meta.db_table}, instance._news_cache_write)


def on_written(sender, using, instance=None, **kwargs) -> None:
    name = getattr(instance, "__dict__", {}).pop("_news_cache_write", "")
    if name and (store := get_store()) is not None:
        store.written({sender._meta.db_table}, name)
        return
    tables_written([sender._meta.db_table], using=using)


def on_migrated(sender, using, **kwargs) -> None:
    # flush and migrate change rows without a model signal: every generation goes, once (the
    # signal comes once per app).
    if sender.label == "news":
        tables_written(cached_tables(), using=using)


def connect_receivers(models: Iterable[type[Model]]) -> None:
    for model in models:
        label = model._meta.label_lower
        for signal, name in (
            (post_save, "saved"),
            (post_delete, "deleted"),
            (rows_created, "rows+"),
            (rows_updated, "rows~"),
        ):
            signal.connect(on_written, sender=model, dispatch_uid=f"news.cache.{name}.{label}")
        for signal, name in ((pre_save, "saving"), (pre_delete, "deleting")):
            signal.connect(on_writing, sender=model, dispatch_uid=f"news.cache.{name}.{label}")
    post_migrate.connect(on_migrated, dispatch_uid="news.cache.migrated")
