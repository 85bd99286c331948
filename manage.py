#!/usr/bin/env python
"""Django's command-line utility for administrative tasks.

Settings come from the environment, then from the project's .env file for whatever the
environment leaves unset (news_project.env.load_env_file). Whatever goes wrong that an operator
can fix ends a command with one line on stderr, never a traceback: a missing or invalid setting
(exit status 2), a usage error (2, with a pointer to --help), a database out of reach (1, naming
the database, its password hidden), Django missing from the Python that runs it (1), a question
that standard input cannot answer (1). `--traceback` shows the traceback of a database error. A
reader of the output that went away (`| head`) ends it quietly, with exit status 1; Ctrl-C that
a command does not handle itself, with `Interrupted` and exit status 130.
"""

import os
import secrets
import sys

EXIT_CONFIGURATION = 2
# As a shell reports a process ended by SIGINT.
EXIT_INTERRUPTED = 130
# Commands that meet the database where an error is no longer one line: runserver checks it in
# a thread of its own, and goes on serving.
CHECKED_AT_START = {"runserver"}
HELP = {"-h", "--help"}


def only_help(args: list[str]) -> bool:
    """`manage.py [help] [COMMAND]`, `manage.py COMMAND --help`: nothing runs but argparse."""
    if not args or args[0] in HELP:
        return True
    if args[0] == "help":
        return len(args) <= 2
    return len(args) == 2 and args[1] in HELP


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "news_project.settings")
    try:
        import django  # noqa: F401
    except ImportError:
        sys.stderr.write(
            f"Error: Django is not installed for {sys.executable}: run manage.py with the "
            "project's virtualenv (.venv/bin/python manage.py; make install makes it)\n"
        )
        sys.exit(1)
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line
    from django.db import DatabaseError

    from news_project.env import load_env_file

    try:
        load_env_file()
        if only_help(sys.argv[1:]):
            # Help signs nothing: a newcomer reads the options before a key is set, or with the
            # placeholder of a copied .env.example, which nothing may sign with.
            os.environ["DJANGO_SECRET_KEY"] = secrets.token_urlsafe(50)
        # Read the settings before Django does, so that a bad value stops here, in one line.
        settings.INSTALLED_APPS  # noqa: B018
        from news_project import commandline

        commandline.one_line_usage_errors()
        commandline.database_must_exist(sys.argv[1:])
        if sys.argv[1:2] and sys.argv[1] in CHECKED_AT_START and "--help" not in sys.argv:
            commandline.check_database()
        execute_from_command_line(sys.argv)
        sys.stdout.flush()  # here, where a reader gone (below) is still ours to answer
    except KeyboardInterrupt:
        # Ctrl-C where a command does not handle it itself (at flush's question, say).
        at_a_terminal = sys.stdin is not None and not sys.stdin.closed and sys.stdin.isatty()
        sys.stderr.write("\nInterrupted\n" if at_a_terminal else "Interrupted\n")
        sys.exit(EXIT_INTERRUPTED)
    except EOFError:
        # input() found standard input closed: a question nobody can answer (</dev/null, Ctrl-D).
        sys.stderr.write("Error: no answer to the command's question: standard input is closed\n")
        sys.exit(1)
    except BrokenPipeError:
        # `manage.py sync_status | head -1`: the reader of the output went away. Nothing more
        # to say, as for any command-line tool; the output still buffered goes nowhere.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
    except ImproperlyConfigured as exc:
        sys.stderr.write(f"Error: {exc}\n")
        sys.exit(EXIT_CONFIGURATION)
    except DatabaseError as exc:
        if "--traceback" in sys.argv:
            raise
        sys.stderr.write(f"Error: {commandline.database_error(exc)}\n")
        sys.exit(commandline.EXIT_DATABASE)


if __name__ == "__main__":
    main()
