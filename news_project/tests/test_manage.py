"""manage.py: settings from the environment, then .env; a bad setting is one line, no traceback."""

import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from django.conf import settings
from django.db import connection
from dotenv import dotenv_values

from news_project import env
from testing import processes


def run_manage(*args: str, **variables: str):
    """manage.py in a clean environment: PATH, no .env, and the variables given."""
    return processes.run_manage(*args, clean=True, **variables)


def assert_one_line_error(result, *, naming: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ") and naming in lines[0], lines[0]
    assert "Traceback" not in result.stdout + result.stderr


COMMANDS = [
    ("check",),
    ("migrate",),
    ("runserver", "127.0.0.1:18099"),
    ("createsuperuser", "--username", "admin"),
    ("import_initial_data",),
    ("sync_changes", "--dry-run"),
    ("sync_status",),
    ("prune_events",),
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda command: command[0])
def test_without_a_secret_key_any_command_stops_with_one_line(command, tmp_path):
    result = run_manage(*command, DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}")

    assert_one_line_error(result, naming="DJANGO_SECRET_KEY must be set")
    assert not (tmp_path / "db.sqlite3").exists()


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DJANGO_DEBUG", "perhaps"),
        ("DATABASE_URL", "nosuchdb://here"),
        ("DATABASE_URL", "mysql://news@db/news"),  # a database this service does not run on
        ("DATABASE_URL", "postgres://"),  # no database named
        ("DATABASE_URL", "postgres://news:pa/ss@db:5432/news"),  # a password not encoded
        ("DATABASE_URL", "postgres://news:p@ss/w@db:5432/news"),  # ... with an @ before its /
        ("SYNC_MAX_ATTEMPTS", "many"),
        ("SYNC_EVENT_RETENTION_DAYS", "-1"),
        ("SYNC_RUN_RETENTION_DAYS", "a month"),
        ("TARGET_URL", "ftp://example.com"),
        ("TARGET_URL", "http://[::1"),
        ("TARGET_URL", "http://127.0.0.1:abc"),
        ("TARGET_URL", "http://127.0.0.1:3000#x"),
        ("TARGET_URL", "http://127.0.0.1:3000/?a=1"),
        ("FAKE_API_URL", "ftp://example.com"),
        ("REDIS_URL", "redis://[::1:6379/11"),
        ("REDIS_URL", "redis://127.0.0.1:99999/0"),
        ("REDIS_URL", "redis://127.0.0.1:6379/abc"),  # redis-py would take database 0
        ("REDIS_URL", "redis://127.0.0.1:6379/1/2"),
        ("REDIS_URL", "redis://127.0.0.1:6379/?db=x"),
        ("REDIS_URL", "unix:///run/redis.sock?db=one"),
    ],
)
def test_an_invalid_setting_stops_any_command_with_one_line_naming_it(variable, value):
    result = run_manage("sync_status", **{"DJANGO_DEBUG": "1", variable: value})

    assert_one_line_error(result, naming=variable)


# --- Usage errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "error"),
    [
        (
            ("import_initial_data", "--timeout", "0"),
            "argument --timeout: must be more than 0, got '0'",
        ),
        (("sync_status", "--bogus"), "unrecognized arguments: --bogus"),
        (
            ("sync_changes", "--concurrency", "many"),
            "argument --concurrency: invalid int value: 'many'",
        ),
        (("prune_events", "--older-than"), "argument --older-than: expected one argument"),
        (("serve", "--bind", "8000"), "argument --bind: invalid HOST:PORT value: '8000'"),
        (("migrate", "--bogus"), "unrecognized arguments: --bogus"),
    ],
    ids=lambda value: value[0] if isinstance(value, tuple) else None,
)
def test_a_usage_error_is_one_line_that_points_to_help(command, error, tmp_path):
    result = run_manage(*command, DJANGO_DEBUG="1", DATABASE_URL=f"sqlite:///{tmp_path / 'db'}")

    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"Error: {error} (manage.py {command[0]} --help lists the options)"
    ]


def test_a_superuser_whose_password_nobody_can_type_is_an_error_not_a_skip(tmp_path):
    database = f"sqlite:///{tmp_path / 'db'}"
    env = processes.manage_env(clean=True, DJANGO_DEBUG="1", DATABASE_URL=database)
    assert run_manage("migrate", DJANGO_DEBUG="1", DATABASE_URL=database).returncode == 0

    def createsuperuser(*args, **more):
        return subprocess.run(
            [sys.executable, "manage.py", "createsuperuser", "--username", "admin", *args],
            cwd=settings.BASE_DIR,
            env={**env, **more},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
        )

    asked = createsuperuser()
    # The password in the environment is read only with --noinput: Django would ask, and skip.
    asked_anyway = createsuperuser("--email", "a@b.cd", DJANGO_SUPERUSER_PASSWORD="x" * 12)
    weak = createsuperuser("--email", "a@b.cd", "--noinput", DJANGO_SUPERUSER_PASSWORD="1")
    made = createsuperuser("--email", "a@b.cd", "--noinput", DJANGO_SUPERUSER_PASSWORD="x" * 12)
    again = createsuperuser("--email", "a@b.cd", "--noinput", DJANGO_SUPERUSER_PASSWORD="x" * 12)

    assert asked.returncode == 1
    assert asked.stderr.splitlines() == [
        "CommandError: no terminal to ask the superuser's password at: set "
        "DJANGO_SUPERUSER_PASSWORD and run it with --noinput (make superuser does), or run it "
        "at a terminal"
    ]
    assert (asked_anyway.returncode, asked_anyway.stderr) == (1, asked.stderr)
    # The checks a password typed at the prompt gets, which --noinput alone would skip.
    assert weak.returncode == 1
    assert weak.stderr.splitlines() == [
        "CommandError: DJANGO_SUPERUSER_PASSWORD is refused: This password is too short. It must "
        "contain at least 8 characters. This password is too common. This password is entirely "
        "numeric."
    ]
    assert made.returncode == 0, made.stderr
    assert again.returncode == 1
    assert again.stderr.splitlines() == ["CommandError: That username is already taken."]


def test_a_question_left_without_an_answer_is_one_line(tmp_path):
    database = f"sqlite:///{tmp_path / 'db'}"
    assert run_manage("migrate", DJANGO_DEBUG="1", DATABASE_URL=database).returncode == 0

    result = subprocess.run(
        [sys.executable, "manage.py", "flush"],
        cwd=settings.BASE_DIR, stdin=subprocess.DEVNULL, capture_output=True, text=True,
        env=processes.manage_env(clean=True, DJANGO_DEBUG="1", DATABASE_URL=database),
    )  # fmt: skip

    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "Error: no answer to the command's question: standard input is closed"
    ]


def test_a_command_interrupted_at_its_question_ends_with_one_line(tmp_path):
    database = f"sqlite:///{tmp_path / 'db'}"
    assert run_manage("migrate", DJANGO_DEBUG="1", DATABASE_URL=database).returncode == 0
    command = [sys.executable, "manage.py", "flush"]
    environment = processes.manage_env(clean=True, DJANGO_DEBUG="1", DATABASE_URL=database)
    with subprocess.Popen(
        command, cwd=settings.BASE_DIR, env=environment, text=True,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        # As at a terminal: a background job of a script (CI's) starts with SIGINT ignored.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    ) as flush:  # fmt: skip
        asked = ""
        while not asked.endswith("'no' to cancel: "):
            asked += flush.stdout.read(1)
        time.sleep(0.3)  # waiting for the answer, in input()
        flush.send_signal(signal.SIGINT)
        flush.wait(timeout=30)  # its standard input still open: the question is unanswered
        errors = flush.stderr.read()

    assert (flush.returncode, errors.splitlines()) == (130, ["Interrupted"])


def test_manage_py_run_by_a_python_without_django_says_so_in_one_line(tmp_path):
    # A python without the project's packages: a fresh virtualenv's, without its site-packages.
    result = subprocess.run(
        [sys.executable, "-I", "-S", "manage.py", "check_env"],
        cwd=settings.BASE_DIR, capture_output=True, text=True, env={"PATH": os.environ["PATH"]},
    )  # fmt: skip

    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"Error: Django is not installed for {sys.executable}: run manage.py with the "
        "project's virtualenv (.venv/bin/python manage.py; make install makes it)"
    ]


def test_help_still_shows_the_usage():
    result = run_manage("sync_status", "--help", DJANGO_DEBUG="1")

    assert result.returncode == 0
    assert result.stdout.startswith("usage: manage.py sync_status ")


@pytest.mark.parametrize(
    "args", [("serve", "--help"), ("sync_changes", "-h"), ("help", "serve"), ("help",)]
)
def test_help_needs_no_secret_key(args):
    """A newcomer reads the options before configuring anything (debug off, no key)."""
    result = run_manage(*args)

    assert result.returncode == 0, result.stderr
    assert "usage: manage.py" in result.stdout or "Available subcommands" in result.stdout


@pytest.mark.parametrize("args", [("help",), ("sync_changes", "--help")])
def test_help_needs_no_secret_key_even_with_the_templates_placeholder(args, tmp_path):
    """`cp .env.example .env` leaves the placeholder key, which nothing may sign with: help signs
    nothing."""
    env_file = tmp_path / ".env"
    env_file.write_text(f"DJANGO_SECRET_KEY={env.ENV_EXAMPLE_SECRET_KEY}\n")

    result = run_manage(*args, DJANGO_ENV_FILE=str(env_file))

    assert result.returncode == 0, result.stderr
    assert "usage: manage.py" in result.stdout or "Available subcommands" in result.stdout


def test_a_command_with_help_among_other_arguments_still_needs_the_key():
    result = run_manage("shell", "-c", "print('--help')")

    assert_one_line_error(result, naming="DJANGO_SECRET_KEY must be set")


# --- A database out of reach --------------------------------------------------------------------

# The manage.py commands the documents name that use the database, as they name them.
DATABASE_COMMANDS = [
    ("migrate", "--noinput"),
    ("runserver", "127.0.0.1:FREE"),
    ("serve", "--bind", "127.0.0.1:FREE"),
    ("createsuperuser", "--username", "admin", "--email", "admin@example.com", "--noinput"),
    ("createcachetable",),
    ("import_initial_data", "--url", "http://127.0.0.1:1"),
    ("sync_changes", "--url", "http://127.0.0.1:1"),
    ("sync_changes", "--dry-run", "--full", "--url", "http://127.0.0.1:1"),
    ("sync_changes", "--retry-parked", "--url", "http://127.0.0.1:1"),
    ("sync_changes", "--follow", "--url", "http://127.0.0.1:1"),
    ("sync_status", "--json"),
    ("sync_status", "--check"),
    ("prune_events",),
    ("flushexpiredtokens",),
    ("flush", "--noinput"),
]


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def assert_one_line_naming_the_database(result, line: str) -> None:
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert result.stderr.splitlines() == [line], output
    assert "Traceback" not in output


@pytest.mark.parametrize("command", DATABASE_COMMANDS, ids=" ".join)
def test_a_database_nobody_answers_for_stops_every_command_with_one_line_naming_it(command):
    port = closed_port()
    url = f"postgres://news:s3cret-password@127.0.0.1:{port}/news"
    command = [word.replace("FREE", str(closed_port())) for word in command]

    result = run_manage(*command, DJANGO_DEBUG="1", DJANGO_CACHE="database", DATABASE_URL=url)

    assert_one_line_naming_the_database(
        result,
        f"Error: cannot reach the database postgres://news:***@127.0.0.1:{port}/news "
        "(DATABASE_URL): Connection refused (is the server running on that host and accepting "
        "TCP/IP connections?)",
    )
    assert "s3cret-password" not in result.stdout + result.stderr


@pytest.mark.parametrize("command", [("migrate", "--noinput"), ("sync_status",)], ids=" ".join)
def test_a_sqlite_file_in_a_missing_directory_is_one_line(command, tmp_path):
    path = tmp_path / "no" / "such" / "db.sqlite3"

    result = run_manage(*command, DJANGO_DEBUG="1", DATABASE_URL=f"sqlite:///{path}")

    assert_one_line_naming_the_database(
        result,
        f"Error: cannot reach the database sqlite:///{path} (DATABASE_URL): "
        "unable to open database file",
    )


@pytest.mark.postgres
@pytest.mark.parametrize("command", [("migrate", "--noinput"), ("sync_status",)], ids=" ".join)
def test_a_missing_database_is_one_line(command):
    db = connection.settings_dict
    where = f"{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
    url = f"postgres://{db['USER']}@{where}/no_such_database_here"

    result = run_manage(*command, DJANGO_DEBUG="1", DATABASE_URL=url)

    assert_one_line_naming_the_database(
        result,
        f"Error: cannot reach the database {url} (DATABASE_URL): "
        'database "no_such_database_here" does not exist',
    )


def test_a_database_without_its_tables_says_to_migrate(tmp_path):
    url = f"sqlite:///{tmp_path / 'empty.sqlite3'}"
    (tmp_path / "empty.sqlite3").touch()

    result = run_manage("sync_status", DJANGO_DEBUG="1", DATABASE_URL=url)

    assert_one_line_naming_the_database(
        result,
        f"Error: the database {url} (DATABASE_URL) failed: no such table: sync_modelevent "
        "(its tables are missing: run manage.py migrate)",
    )


@pytest.mark.parametrize(
    "command",
    [
        ("sync_status",),
        ("sync_changes", "--url", "http://127.0.0.1:9"),
        ("import_initial_data", "--url", "http://127.0.0.1:9"),
        ("prune_events",),
        ("serve", "--bind", "127.0.0.1:18098"),
        ("createsuperuser", "--noinput", "--username", "admin"),
    ],
    ids=lambda command: command[0],
)
def test_a_sqlite_file_that_does_not_exist_is_named_and_not_created(command, tmp_path):
    """A mistyped path is not answered by an empty database made there (only migrate makes
    one)."""
    path = tmp_path / "typo.sqlite3"

    result = run_manage(*command, DJANGO_DEBUG="1", DATABASE_URL=f"sqlite:///{path}")

    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    [line] = result.stderr.splitlines()
    assert str(path) in line or command[0] == "sync_changes", line
    assert "no such file: manage.py migrate creates it" in line, line
    assert "Traceback" not in output
    assert not path.exists()


def test_a_sync_on_a_database_without_its_tables_says_to_migrate(tmp_path):
    url = f"sqlite:///{tmp_path / 'empty.sqlite3'}"
    (tmp_path / "empty.sqlite3").touch()

    result = run_manage(
        "sync_changes", "--url", "http://127.0.0.1:9", DJANGO_DEBUG="1", DATABASE_URL=url
    )

    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "CommandError: Sync failed: database error (no such table: sync_synctarget; its tables "
        "are missing: run manage.py migrate)"
    ]


def test_a_follower_on_a_database_without_its_tables_says_to_migrate_while_it_waits(tmp_path):
    """As under compose, where the follower may start before the web service has migrated."""
    url = f"sqlite:///{tmp_path / 'empty.sqlite3'}"
    follower = processes.start_manage(
        "sync_changes", "--follow", "--url", "http://127.0.0.1:9", DATABASE_URL=url
    )
    try:
        lines = [follower.stdout.readline().strip() for _ in range(2)]
    finally:
        follower.terminate()
        follower.communicate(timeout=30)

    assert lines[0] == "Active: holding the run lock"
    assert lines[1].startswith("Database not migrated (no such table: ")
    assert lines[1].endswith("): run manage.py migrate; retrying in 1 s")


def test_database_password_is_the_password_as_it_is_whatever_it_holds():
    shown = run_manage(
        "shell",
        "--no-imports",
        "-c",
        "from django.conf import settings; db = settings.DATABASES['default']; "
        "print(db['PASSWORD'], db['HOST'], db['NAME'])",
        DJANGO_DEBUG="1",
        DATABASE_URL="postgres://news:in-the-url@db:5432/news",
        DATABASE_PASSWORD="p@s/s#w?rd $x",
    )

    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip() == "p@s/s#w?rd $x db news"


def env_example() -> dict[str, str | None]:
    return dotenv_values(settings.BASE_DIR / ".env.example")


def test_env_example_ships_the_placeholder_secret_key_that_is_refused():
    assert env_example()["DJANGO_SECRET_KEY"] == env.ENV_EXAMPLE_SECRET_KEY


@pytest.mark.parametrize("debug", ["0", "1"])
def test_the_placeholder_secret_key_of_env_example_is_refused_in_one_line(debug, tmp_path):
    copied = {name: value for name, value in env_example().items() if value is not None}
    copied.update(DJANGO_DEBUG=debug, DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}")

    result = run_manage("check", **copied)

    assert_one_line_error(result, naming="placeholder of .env.example")


# --- The target's URL ----------------------------------------------------------------------------

SHOW_TARGET = (
    "shell",
    "--no-imports",
    "-c",
    "from django.conf import settings; print(settings.TARGET_URL)",
)


@pytest.mark.parametrize(
    ("variables", "target"),
    [
        ({}, "https://jsonplaceholder.typicode.com"),
        ({"TARGET_URL": "http://target.example/"}, "http://target.example"),
        ({"FAKE_API_URL": "http://old-name.example"}, "http://old-name.example"),
        (
            {"TARGET_URL": "http://target.example", "FAKE_API_URL": "http://old-name.example"},
            "http://target.example",
        ),
    ],
    ids=["default", "target-url", "fake-api-url-alone", "both-target-url-wins"],
)
def test_the_target_is_target_url_or_else_fake_api_url(variables, target):
    shown = run_manage(*SHOW_TARGET, DJANGO_DEBUG="1", **variables)

    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip() == target


# --- .env ----------------------------------------------------------------------------------------

SHOW_DATABASE = (
    "shell",
    "--no-imports",
    "-c",
    "from django.conf import settings; print(settings.DATABASES['default']['NAME'])",
)


def test_manage_py_reads_the_env_file(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text(f"DJANGO_DEBUG=1\nDATABASE_URL=sqlite:///{tmp_path / 'from-env-file.db'}\n")

    migrated = run_manage("migrate", "--noinput", DJANGO_ENV_FILE=str(env_file))
    shown = run_manage(*SHOW_DATABASE, DJANGO_ENV_FILE=str(env_file))

    assert migrated.returncode == 0, migrated.stderr
    assert (tmp_path / "from-env-file.db").is_file()
    assert shown.stdout.strip() == str(tmp_path / "from-env-file.db")


def test_the_environment_wins_over_the_env_file(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text(f"DJANGO_DEBUG=1\nDATABASE_URL=sqlite:///{tmp_path / 'file.db'}\n")

    shown = run_manage(
        *SHOW_DATABASE,
        DJANGO_ENV_FILE=str(env_file),
        DATABASE_URL=f"sqlite:///{tmp_path / 'environment.db'}",
    )

    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip() == str(tmp_path / "environment.db")


def test_an_empty_env_file_name_reads_no_file(tmp_path, monkeypatch):
    monkeypatch.setattr(env, "PROJECT_DIR", tmp_path)
    (tmp_path / ".env").write_text("NEWS_ENV_FILE_PROBE=read\n")
    monkeypatch.setenv("DJANGO_ENV_FILE", "")

    assert env.load_env_file() is None
    assert "NEWS_ENV_FILE_PROBE" not in os.environ


def test_by_default_the_env_file_is_the_projects(tmp_path, monkeypatch):
    monkeypatch.setattr(env, "PROJECT_DIR", tmp_path)
    (tmp_path / ".env").write_text("NEWS_ENV_FILE_PROBE=read\n")
    monkeypatch.delenv("DJANGO_ENV_FILE", raising=False)
    try:
        assert env.load_env_file() == tmp_path / ".env"
        assert os.environ["NEWS_ENV_FILE_PROBE"] == "read"
    finally:
        os.environ.pop("NEWS_ENV_FILE_PROBE", None)


def test_without_the_projects_env_file_the_defaults_apply(tmp_path, monkeypatch):
    monkeypatch.setattr(env, "PROJECT_DIR", tmp_path)
    monkeypatch.delenv("DJANGO_ENV_FILE", raising=False)

    assert env.load_env_file() is None


@pytest.mark.parametrize("where", ["missing.env", "."])
def test_an_env_file_named_that_is_not_there_stops_any_command_with_one_line(tmp_path, where):
    # A mistyped DJANGO_ENV_FILE would otherwise run on the defaults: SQLite, the public target.
    named = tmp_path / where
    result = run_manage("check_env", DJANGO_ENV_FILE=str(named))

    assert_one_line_error(result, naming="DJANGO_ENV_FILE")
    assert str(named) in result.stderr


@pytest.mark.parametrize("debug", ["1", "0"])
def test_a_log_message_of_django_is_printed_once(debug):
    """Django's own loggers hand their messages to the root's one handler, not to theirs too."""
    said = "import logging; logging.getLogger('django.request').warning('said once')"
    result = run_manage("shell", "-c", said, DJANGO_DEBUG=debug, DJANGO_SECRET_KEY="k" * 50)

    assert result.returncode == 0, result.stderr
    assert result.stderr.count("said once") == 1, result.stderr


@pytest.mark.parametrize("command", [("help",), ("sync_status",)], ids=lambda c: c[0])
def test_output_read_by_a_reader_that_went_away_ends_quietly(command, tmp_path):
    """`manage.py sync_status | head -1`: once the reader is gone, nothing more to say; no
    traceback, as any command-line tool."""
    database = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    assert run_manage("migrate", DJANGO_DEBUG="1", DATABASE_URL=database).returncode == 0
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first line is written
    with open(write, "w") as gone, open(tmp_path / "stderr", "w+") as errors:
        code = subprocess.run(
            [sys.executable, "manage.py", *command],
            cwd=settings.BASE_DIR,
            env=processes.manage_env(clean=True, DJANGO_DEBUG="1", DATABASE_URL=database),
            stdout=gone,
            stderr=errors,
            timeout=60,
        ).returncode
        errors.seek(0)
        said = errors.read()

    assert "Traceback" not in said and "BrokenPipeError" not in said, said
    assert said == ""
    assert code == 1


@pytest.mark.parametrize(
    "content",
    [b"TARGET_URL=http://127.0.0.1:3000\nPOSTGRES_PASSWORD=caf\xe9\n", b"\x7fELF\x02\x01\x00\xff"],
    ids=["latin-1", "binary"],
)
def test_an_env_file_that_is_not_utf8_text_is_one_line(content, tmp_path):
    env_file = tmp_path / "settings.env"
    env_file.write_bytes(content)

    result = run_manage("sync_status", DJANGO_ENV_FILE=str(env_file))

    assert_one_line_error(result, naming=f"{env_file} is not UTF-8 text")


def test_check_env_shows_the_target_without_its_password():
    url = "http://sync:s3cret-word@127.0.0.1:3000"

    result = run_manage("check_env", DJANGO_DEBUG="1", TARGET_URL=url)

    assert result.returncode == 0, result.stderr
    assert "target http://sync:***@127.0.0.1:3000;" in result.stdout
    assert "s3cret" not in result.stdout


def test_flush_with_redis_set_and_out_of_reach_changes_nothing_in_one_line(tmp_path):
    """As every write: answers of the rows it would delete would outlive it in Redis."""
    database = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    variables = {"DJANGO_DEBUG": "1", "DATABASE_URL": database}
    assert run_manage("migrate", "-v0", **variables).returncode == 0
    made = run_manage(
        "createsuperuser", "--noinput", "--username", "kept", "--email", "k@example.com",
        DJANGO_SUPERUSER_PASSWORD="a-long-enough-password-7", **variables,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    redis_url = f"redis://127.0.0.1:{closed_port()}/0"

    result = run_manage("flush", "--noinput", REDIS_URL=redis_url, **variables)

    assert result.returncode == 1, result.stdout + result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith("CommandError: The cache of reads (Redis) cannot be reached")
    assert "nothing was changed" in line and "Connection refused" in line
    assert line.endswith("(REDIS_URL)")
    count = "from django.contrib.auth.models import User; print(User.objects.count())"
    assert run_manage("shell", "-c", count, **variables).stdout.split()[-1] == "1"


def test_a_secret_key_of_whitespace_is_no_key():
    result = run_manage("check_env", DJANGO_SECRET_KEY="   ")

    assert_one_line_error(result, naming="DJANGO_SECRET_KEY must be set")


def test_a_target_url_whose_password_holds_a_slash_is_refused_without_showing_it():
    result = run_manage("check_env", DJANGO_DEBUG="1", TARGET_URL="http://sync:12/s3cret@host")

    assert_one_line_error(result, naming="TARGET_URL")
    assert "percent-encode" in result.stderr and "s3cret" not in result.stderr


def test_error_reports_show_no_password_of_a_url_in_the_settings(settings):
    from django.views.debug import get_default_exception_reporter_filter

    settings.TARGET_URL = "http://sync:s3cret-word@target.example/api"
    settings.REDIS_URL = "redis://:r3dis-word@127.0.0.1:6379/0"

    shown = get_default_exception_reporter_filter().get_safe_settings()

    assert shown["TARGET_URL"] == "http://sync:***@target.example/api"
    assert shown["REDIS_URL"] == "redis://:***@127.0.0.1:6379/0"


def test_a_target_url_refused_is_named_without_its_password():
    result = run_manage("sync_status", DJANGO_DEBUG="1", TARGET_URL="ftp://sync:s3cret@host")

    assert_one_line_error(result, naming="TARGET_URL must be an http(s) URL")
    assert "sync:***@host" in result.stderr and "s3cret" not in result.stderr
