from django.core.management.base import BaseCommand, CommandError

from news_project.commandline import EXIT_USAGE
from news_project.serving import THREADS, WORKERS, ServingError, ServingUsageError, serve


def address(value: str) -> tuple[str, int]:
    """HOST:PORT, e.g. 0.0.0.0:8000 or 127.0.0.1:8080."""
    host, colon, port = value.rpartition(":")
    if not (colon and host and port.isdigit() and 0 < int(port) < 65536):
        raise ValueError(value)
    return host.strip("[]"), int(port)


address.__name__ = "HOST:PORT"  # argparse names the type in its error: "invalid HOST:PORT value"


# More workers or threads than anyone means: each takes memory and file descriptors at start.
MOST = 256


def positive(value: str) -> int:
    """A whole number from 1 to MOST."""
    number = int(value)
    if not 1 <= number <= MOST:
        raise ValueError(value)
    return number


positive.__name__ = f"number from 1 to {MOST}"


class Command(BaseCommand):
    help = (
        "Serve the API (news_project.asgi) with granian, as the Dockerfile and docker compose do: "
        "worker processes of a few threads each."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--bind", type=address, default=("0.0.0.0", 8000), metavar="HOST:PORT",
            help="where to listen (default 0.0.0.0:8000)",
        )  # fmt: skip
        parser.add_argument(
            "--workers", type=positive, default=WORKERS,
            help=f"worker processes (default {WORKERS}: one per CPU of a 2-CPU machine)",
        )  # fmt: skip
        parser.add_argument(
            "--threads", type=positive, default=THREADS,
            help=f"threads of each worker, more than NEWS_MAX_STREAMS (default {THREADS})",
        )  # fmt: skip
        parser.add_argument(
            "--no-access-log", dest="access_log", action="store_false",
            help="do not log a line for every request",
        )  # fmt: skip

    def handle(self, *args, bind, workers, threads, access_log, **options) -> None:
        host, port = bind
        try:
            serve(host=host, port=port, workers=workers, threads=threads, access_log=access_log)
        except ServingUsageError as exc:
            raise CommandError(str(exc), returncode=EXIT_USAGE) from None
        except ServingError as exc:
            raise CommandError(str(exc)) from None
