"""Plumbing shared by the benchmark scripts: Django set-up on a throwaway PostgreSQL database."""

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "news_project.settings")
os.environ.setdefault("DJANGO_SECRET_KEY", "benchmark-only-insecure-key")


@contextmanager
def throwaway_database(suffix: str) -> Iterator[None]:
    """Set Django up on `<DATABASE_URL's name>_<suffix>`, created and migrated here, then dropped.

    Exits with a one-line message unless DATABASE_URL points at PostgreSQL.
    """
    import django
    from django.conf import settings

    database = settings.DATABASES["default"]
    if database["ENGINE"] != "django.db.backends.postgresql":
        raise SystemExit("DATABASE_URL must point at PostgreSQL (postgres://...)")
    database["TEST"] = {"NAME": f"{database['NAME']}_{suffix}"}
    django.setup()

    from django.test.utils import (
        setup_databases,
        setup_test_environment,
        teardown_databases,
        teardown_test_environment,
    )

    setup_test_environment(debug=False)
    old_config = setup_databases(verbosity=0, interactive=False)
    try:
        yield
    finally:
        teardown_databases(old_config, verbosity=0)
        teardown_test_environment()


def database_url() -> str:
    """A DATABASE_URL for a child process that reaches the database Django is set up on."""
    from django.db import connection

    db = connection.settings_dict
    if connection.vendor != "postgresql":
        return f"sqlite:///{db['NAME']}"
    auth = (db["USER"] or "") + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
