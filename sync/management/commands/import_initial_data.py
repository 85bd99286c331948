import argparse
from urllib.parse import urlsplit

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from sync.client import TargetApiClient, TargetApiError
from sync.errors import SyncError
from sync.services.importing import import_initial_data


def http_url(value: str) -> str:
    parts = urlsplit(value.strip())
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise argparse.ArgumentTypeError(f"must be an http(s) URL, got {value!r}")
    return value.strip().rstrip("/")


def positive_seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, got {value!r}") from None
    if not seconds > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {value!r}")
    return seconds


class Command(BaseCommand):
    help = (
        "Load every post and comment of the target (FAKE_API_URL) into an empty database, "
        "keeping their ids. Runs once, before the first sync."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--url", type=http_url, help="base URL of the target (default: FAKE_API_URL)"
        )
        parser.add_argument(
            "--timeout",
            type=positive_seconds,
            help="seconds to wait for each answer (default: FAKE_API_TIMEOUT)",
        )

    def handle(self, *args, url: str | None, timeout: float | None, **options) -> None:
        client = TargetApiClient(
            base_url=url or settings.FAKE_API_URL,
            timeout=timeout or settings.FAKE_API_TIMEOUT,
            retries=settings.SYNC_RETRIES,
            backoff_factor=settings.SYNC_BACKOFF_FACTOR,
            backoff_max=settings.SYNC_BACKOFF_MAX,
        )
        try:
            with client:
                report = import_initial_data(client=client, progress=self.stdout.isatty())
        except SyncError as exc:
            raise CommandError(str(exc)) from None
        except TargetApiError as exc:
            raise CommandError(f"Cannot read the target: {exc}. Nothing was imported.") from None
        self.stdout.write(self.style.SUCCESS(str(report)))
