from django.conf import settings
from django.core.management.base import BaseCommand

from news_project.commandline import database_label
from sync.errors import without_password

PUBLIC_TARGET = "https://jsonplaceholder.typicode.com"


class Command(BaseCommand):
    help = (
        "Check the settings (the environment, then .env) without starting anything: a bad one "
        "stops here with one line naming it; otherwise one line with what they amount to."
    )

    def handle(self, *args, **options) -> None:
        # Reaching this line means every setting was read and accepted (manage.py stops first).
        facts = [
            f"DJANGO_DEBUG {'on (development only)' if settings.DEBUG else 'off'}",
            f"database {database_label()}",
            f"target {without_password(settings.TARGET_URL)}"
            + (" (keeps nothing it is sent)" if settings.TARGET_URL == PUBLIC_TARGET else ""),
            f"hosts {', '.join(settings.ALLOWED_HOSTS)}",
            "/metrics and /health/sync/ "
            + (
                "need METRICS_TOKEN"
                if settings.METRICS_TOKEN
                else "open (DJANGO_DEBUG)"
                if settings.DEBUG
                else "refused (no METRICS_TOKEN)"
            ),
        ]
        self.stdout.write(f"Settings are usable: {'; '.join(facts)}")
