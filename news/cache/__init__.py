"""The read cache: API reads answered from Redis, kept exact by the writes themselves.

With REDIS_URL set, a GET under /news/ without credentials, or with an access token whose user
was checked since that user last changed (news/cache/tokens.py), is answered from Redis when an
answer to the same URL (and Accept, Accept-Encoding and Origin headers) was stored there under
the current *generation* of every table it reads. Each table's generation is a token in Redis that
every write replaces once its transaction has committed, before the write is answered (news's
own announcements: post_save, post_delete, rows_created and rows_updated; post_migrate, which
flush and migrate send, replaces them all). So once a write has been answered, no process serves
an answer stored before it: the entry's generations no longer match. A hit costs one round trip
to Redis and is answered before Django runs (ReadCache wraps the WSGI application; under `serve`
its `stored()` answers on the worker's event loop, taking no thread): no middleware, no
database.

Tokens are unique in time, never counters: a generation key that Redis lost (restart, eviction)
cannot come back with a value an old entry was stored under. A Redis that comes back with keys
from before (restarted from its snapshot, a replica promoted, a full resync) is told by the
lineage of its data on every new connection, before any command, and once a second on those
open; its keys of the cache are then dropped (store.RENEW).

Without REDIS_URL, or while Redis does not answer, every read goes to the database as usual;
without REDIS_URL, under `serve` on PostgreSQL, each worker keeps answers of its own under the
database's snapshot (snapshots.py).
"""

from news.cache.reads import ReadCache
from news.cache.store import (
    CacheUnavailable,
    ReadCacheStore,
    get_store,
    refusals_line,
    refusals_said_by_caller,
)
from news.cache.writes import connect_receivers, start_fresh, tables_written

__all__ = [
    "CacheUnavailable",
    "ReadCache",
    "ReadCacheStore",
    "connect_receivers",
    "get_store",
    "refusals_line",
    "refusals_said_by_caller",
    "start_fresh",
    "tables_written",
]
