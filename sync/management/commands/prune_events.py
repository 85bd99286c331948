from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError

from sync.changelog import prune_events


def parse_days(raw: str) -> int:
    try:
        days = int(raw)
    except ValueError:
        raise CommandError(f"--older-than must be a whole number of days, got {raw!r}") from None
    if days < 0:
        raise CommandError(f"--older-than must be 0 or more days, got {days}")
    return days


class Command(BaseCommand):
    help = (
        "Delete synced change events logged more than DAYS days ago. "
        "Pending (not yet synced) events are never deleted."
    )

    def add_arguments(self, parser) -> None:
        # Parsed in handle() so bad input ends in one CommandError line, not argparse usage.
        parser.add_argument("--older-than", required=True, metavar="DAYS")

    def handle(self, *args, older_than: str, **options) -> None:
        days = parse_days(older_than)
        deleted = prune_events(older_than=timedelta(days=days))
        self.stdout.write(
            f"Deleted {deleted} synced event{'s' if deleted != 1 else ''} "
            f"logged more than {days} day{'s' if days != 1 else ''} ago."
        )
