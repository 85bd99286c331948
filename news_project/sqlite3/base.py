"""Django's SQLite backend, which can be told not to make a database file that is not there.

SQLite answers a connection to a file that does not exist by making an empty one. For a command
that needs the database it has (a sync, the import, the server), a mistyped DATABASE_URL then
leaves an empty file behind and fails later, on a missing table. Told so (`existing_only()`,
which manage.py does for those commands), the connection is refused instead, naming the file;
migrate, the tests and everything else make it as before.
"""

from __future__ import annotations

from pathlib import Path

from django.db import OperationalError
from django.db.backends.sqlite3 import base

_existing_only = False


def existing_only() -> None:
    """From now on, in this process, a database file that is not there is not made."""
    global _existing_only
    _existing_only = True


class DatabaseWrapper(base.DatabaseWrapper):
    def get_new_connection(self, conn_params):
        name = str(conn_params["database"])
        in_memory = name == ":memory:" or name.startswith("file:")
        if _existing_only and not in_memory:
            path = Path(name)
            # A missing directory is left to SQLite's own "unable to open database file".
            if not path.exists() and path.parent.is_dir():
                raise OperationalError("no such file: manage.py migrate creates it")
        return super().get_new_connection(conn_params)
