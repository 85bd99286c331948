"""Django's flush, refused with one line, having changed nothing, while Redis is set and out of
reach: the read cache's answers of the rows it deletes would outlive them, as for any write."""

from django.core.management.base import CommandError
from django.core.management.commands import flush

from news.cache import CacheUnavailable, get_store, refusals_line, refusals_said_by_caller
from news.cache.store import new_token
from news.routes import cached_tables


class Command(flush.Command):
    def handle(self, **options) -> None:
        store = get_store()
        if store is None:
            super().handle(**options)
            return
        tables, name = set(cached_tables()), new_token()
        try:
            # In flight from now, as any write before its commit; every table's generation is
            # replaced after it (post_migrate), and the mark ends with it.
            with refusals_said_by_caller():
                store.writing(tables, name)
        except CacheUnavailable as exc:
            raise CommandError(refusals_line(exc)) from None
        try:
            super().handle(**options)
        finally:
            store.written(tables, name)
