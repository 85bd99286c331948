from datetime import timedelta

from django.core.management.base import BaseCommand
from django.utils import timezone

from sync.services.changelog import PendingGroup, pending_summary


def format_age(age: timedelta) -> str:
    """A short age such as `2d 4h`, `3h 12m`, `5m 09s` or `42s`."""
    seconds = int(age.total_seconds())
    days, seconds = divmod(seconds, 86400)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {seconds:02d}s"
    return f"{seconds}s"


class Command(BaseCommand):
    help = (
        "Show what the synchronisation still has to do: pending change events per table and type."
    )

    def handle(self, *args, **options) -> None:
        now = timezone.now()
        # One section per concern, each a service call plus a writer; add new sections here.
        self.write_pending(pending_summary(now=now))

    def write_section(self, title: str, lines: list[str]) -> None:
        self.stdout.write(self.style.MIGRATE_HEADING(title))
        for line in lines:
            self.stdout.write(f"  {line}")

    def write_pending(self, groups: list[PendingGroup]) -> None:
        if not groups:
            self.write_section("Pending events", ["No pending events."])
            return
        total = sum(group.count for group in groups)
        table_width = max(len("table"), *(len(group.entity_table) for group in groups))
        lines = [f"{'table':<{table_width}}  {'type':<7}  {'count':>7}  oldest"]
        lines += [
            f"{group.entity_table:<{table_width}}  {group.type:<7}  {group.count:>7}  "
            f"{format_age(group.oldest_age)}"
            for group in groups
        ]
        oldest = max(group.oldest_age for group in groups)
        lines.append(f"{'total':<{table_width}}  {'':<7}  {total:>7}  {format_age(oldest)}")
        self.write_section("Pending events", lines)
