from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from sync.changelog import prune_history

# A hundred years: an age further back than dates go is no age.
MOST_DAYS = 36_500


# A bad value is a usage error, as the other commands' (exit status 2).
EXIT_USAGE = 2


def parse_days(option: str, raw: str | None, default: int) -> int:
    if raw is None:
        return default
    try:
        days = int(raw)
    except ValueError:
        raise CommandError(
            f"{option} must be a whole number of days, got {raw!r}", returncode=EXIT_USAGE
        ) from None
    if days < 0:
        raise CommandError(f"{option} must be 0 or more days, got {days}", returncode=EXIT_USAGE)
    if days > MOST_DAYS:
        raise CommandError(
            f"{option} must be at most {MOST_DAYS} days, got {days}", returncode=EXIT_USAGE
        )
    return days


def plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


class Command(BaseCommand):
    help = (
        "Delete what is only history: synced change events logged more than "
        "SYNC_EVENT_RETENTION_DAYS days ago, and sync runs started more than "
        "SYNC_RUN_RETENTION_DAYS days ago (the last run is kept). Pending events are never deleted."
    )

    def add_arguments(self, parser) -> None:
        # Parsed in handle() so bad input ends in one CommandError line, not argparse usage.
        parser.add_argument(
            "--older-than",
            metavar="DAYS",
            help="synced events to delete, by age (default: SYNC_EVENT_RETENTION_DAYS)",
        )
        parser.add_argument(
            "--runs-older-than",
            metavar="DAYS",
            help="sync runs to delete, by age (default: SYNC_RUN_RETENTION_DAYS)",
        )

    def handle(self, *args, older_than: str | None, runs_older_than: str | None, **options):
        event_days = parse_days("--older-than", older_than, settings.SYNC_EVENT_RETENTION_DAYS)
        run_days = parse_days(
            "--runs-older-than", runs_older_than, settings.SYNC_RUN_RETENTION_DAYS
        )
        pruned = prune_history(
            events_older_than=timedelta(days=event_days),
            runs_older_than=timedelta(days=run_days),
        )
        self.stdout.write(
            f"Deleted {plural(pruned.events, 'synced event')} logged more than "
            f"{plural(event_days, 'day')} ago and {plural(pruned.runs, 'sync run')} started more "
            f"than {plural(run_days, 'day')} ago."
        )
