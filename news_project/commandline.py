"""What manage.py adds around every command, so an operator never meets a traceback: a database
out of reach and a usage error each end in one line (a bad setting: news_project.env)."""

from __future__ import annotations

import traceback
from contextlib import suppress

from django.core.management import base
from django.db import DatabaseError, connections

from sync.errors import tables_missing

EXIT_DATABASE = 1
EXIT_USAGE = 2
# Commands that read or write rows of a database that is there already: on SQLite, where opening
# a file that is not there makes an empty one, they name it instead (migrate makes it). A
# follower (`sync_changes --follow`) is left to wait for the tables, as under compose.
NEED_A_DATABASE = {
    "serve",
    "import_initial_data",
    "sync_changes",
    "sync_status",
    "prune_events",
    "createsuperuser",
    "changepassword",
    "flush",
    "dumpdata",
    "loaddata",
}


def database_label(alias: str = "default") -> str:
    """The database as a URL, its password hidden: postgres://news:***@db:5432/news."""
    db = connections[alias].settings_dict
    if connections[alias].vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    scheme = {"postgresql": "postgres"}.get(connections[alias].vendor, connections[alias].vendor)
    user = db.get("USER") or ""
    if user and db.get("PASSWORD"):
        user += ":***"
    where = f"{db.get('HOST') or 'localhost'}" + (f":{db['PORT']}" if db.get("PORT") else "")
    return f"{scheme}://{user}{'@' if user else ''}{where}/{db['NAME']}"


def reason(exc: BaseException, alias: str = "default") -> str:
    """The gist of a database error in one line: `database "x" does not exist`."""
    lines = str(exc).strip().splitlines() or [type(exc).__name__]
    # psycopg: 'connection failed: connection to server at "h", port 5432 failed: FATAL:  ...',
    # and at times a hint on a line of its own ("Is the server running on that host ...?").
    text = lines[0].rpartition(" failed: ")[2] if lines[0].startswith("connection ") else lines[0]
    text = text.removeprefix("FATAL:").strip()
    if len(lines) > 1 and lines[1][:1].isspace():
        hint = lines[1].strip()
        text += f" ({hint[:1].lower()}{hint[1:]})"
    password = connections[alias].settings_dict.get("PASSWORD")
    return text.replace(password, "***") if password else text


def reachable(alias: str = "default") -> bool:
    """Whether a fresh connection to the database can be opened now."""
    connection = connections[alias]
    with suppress(DatabaseError):
        connection.close()
    try:
        connection.ensure_connection()
    except DatabaseError:
        return False
    finally:
        with suppress(DatabaseError):
            connection.close()
    return True


def failed_to_connect(exc: BaseException) -> bool:
    """Whether the error came from opening a connection (Django's get_new_connection)."""
    return any(
        frame.f_code.co_name == "get_new_connection"
        for frame, _ in traceback.walk_tb(exc.__traceback__)
    )


def database_error(exc: DatabaseError) -> str:
    """The one line for a database error that ended a command."""
    if failed_to_connect(exc) or not reachable():
        return f"cannot reach the database {database_label()} (DATABASE_URL): {reason(exc)}"
    gist = reason(exc)
    hint = (
        "its tables are missing: run manage.py migrate"
        if tables_missing(gist)
        else "--traceback shows where"
    )
    return f"the database {database_label()} (DATABASE_URL) failed: {gist} ({hint})"


def database_must_exist(args: list[str]) -> None:
    """For a command that needs the database it has: no SQLite file made where none is."""
    if args and args[0] in NEED_A_DATABASE and "--follow" not in args:
        from news_project import sqlite3

        sqlite3.existing_only()


def check_database() -> None:
    """Raise DatabaseError now if the database cannot be reached (for commands that would meet
    it later where an error is no longer one line, such as runserver's checks in a thread)."""
    connection = connections["default"]
    try:
        connection.ensure_connection()
    finally:
        with suppress(DatabaseError):
            connection.close()


class OneLineParser(base.CommandParser):
    """A usage error on the command line is one line and a pointer to --help, not the usage."""

    def error(self, message: str):
        if self.called_from_command_line:
            self.exit(EXIT_USAGE, f"Error: {message} ({self.prog} --help lists the options)\n")
        super().error(message)


def one_line_usage_errors() -> None:
    """Make every command, Django's own included, build its parser as a OneLineParser."""
    base.CommandParser = OneLineParser
