from django.core.management.base import BaseCommand, CommandError

from news.cache import CacheUnavailable, refusals_line, refusals_said_by_caller
from sync.client import TargetApiClient
from sync.errors import SyncError, TargetApiError
from sync.following import stop_on_signals
from sync.importing import ImportRefused, import_initial_data
from sync.management.arguments import http_url, positive_seconds

START_OVER = "To start over, empty it first: manage.py flush (make reset)."


class Command(BaseCommand):
    help = (
        "Load every post and comment of the target (TARGET_URL) into an empty database, "
        "keeping their ids. Runs once, before the first sync."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--url", type=http_url, help="base URL of the target (default: TARGET_URL)"
        )
        parser.add_argument(
            "--timeout",
            type=positive_seconds,
            help="seconds one attempt of a read may take, from connecting to the last byte "
            "(default: FAKE_API_TIMEOUT)",
        )

    def handle(self, *args, url: str | None, timeout: float | None, **options) -> None:
        client = TargetApiClient.from_settings(url=url, timeout=timeout)
        with client, stop_on_signals() as received, refusals_said_by_caller():
            try:
                report = import_initial_data(
                    client=client, progress=self.stdout.isatty(), stop=lambda: bool(received)
                )
            except SyncError as exc:
                if received:
                    raise CommandError(
                        f"Stopped ({received.reason}); nothing was imported.",
                        returncode=received.exit_status,
                    ) from None
                raise _failed(exc) from None
            except CacheUnavailable as exc:
                raise CommandError(refusals_line(exc)) from None
        self.stdout.write(self.style.SUCCESS(str(report)))


def _failed(exc: SyncError) -> CommandError:
    if isinstance(exc, TargetApiError):
        return CommandError(f"Cannot read the target: {exc}. Nothing was imported.")
    if isinstance(exc, ImportRefused):
        return CommandError(f"{exc} {START_OVER}")
    return CommandError(str(exc))
