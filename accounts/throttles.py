"""The login throttle: DRF's, with each client's count read and written one request at a time.

DRF's throttle reads a client's history from the cache, decides, then writes it back. Requests
that arrive together all read the same history, and all pass: with the database cache, 16
attempts at once against a limit of 10 were 16 password checks. Here the read, the decision and
the write run under a lock per client: a PostgreSQL advisory lock held by the write's transaction
with the database cache (shared by every server process, as the count is), or a lock of the
process otherwise (the in-memory cache counts per process anyway).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from django.core.cache import DEFAULT_CACHE_ALIAS, caches
from django.core.cache.backends.db import DatabaseCache
from django.db import connections, router, transaction
from rest_framework.throttling import ScopedRateThrottle

_process_lock = threading.Lock()


class AtomicScopedRateThrottle(ScopedRateThrottle):
    """ScopedRateThrottle that holds at most its rate under concurrency."""

    @property
    def cache(self):
        # The default cache itself: DRF's is django.core.cache.cache, a proxy of it, in which
        # one_at_a_time() would not see the database cache and lock only this process.
        return caches[DEFAULT_CACHE_ALIAS]

    def allow_request(self, request, view) -> bool:
        scope = getattr(view, self.scope_attr, None)
        with one_at_a_time(self.cache, f"throttle:{scope}:{self.get_ident(request)}"):
            return super().allow_request(request, view)


@contextmanager
def one_at_a_time(cache, name: str) -> Iterator[None]:
    """Run the block while no other request runs it for the same `name`."""
    if isinstance(cache, DatabaseCache):
        alias = router.db_for_write(cache.cache_model_class)
        connection = connections[alias]
        if connection.vendor == "postgresql":
            with transaction.atomic(using=alias), connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_lock_key(name)])
                yield
            return
    with _process_lock:
        yield


def _lock_key(name: str) -> int:
    """A signed 64-bit key for PostgreSQL's advisory locks."""
    digest = hashlib.blake2b(name.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)
