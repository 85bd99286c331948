"""Checks made once when the web server starts, so a broken deployment fails before any request."""

from django.conf import settings
from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError, connections, router

DATABASE_CACHE = "django.core.cache.backends.db.DatabaseCache"


def check_cache_tables() -> None:
    """With DJANGO_CACHE=database, a missing cache table would make every login a 500: stop.

    A database that does not answer here is left to /health/ to report, not a reason to stop
    (`manage.py serve` has already refused to start without one).
    """
    for alias, config in settings.CACHES.items():
        if config["BACKEND"] != DATABASE_CACHE:
            continue
        table = config["LOCATION"]
        connection = connections[router.db_for_write(caches[alias].cache_model_class)]
        try:
            with connection.cursor() as cursor:
                tables = connection.introspection.table_names(cursor)
        except DatabaseError:
            return
        finally:
            connection.close()
        if table not in tables:
            raise ImproperlyConfigured(
                f"DJANGO_CACHE=database, but the cache table {table!r} does not exist: run "
                "manage.py createcachetable (with DJANGO_CACHE=database set; without it, it "
                "creates nothing)"
            )
