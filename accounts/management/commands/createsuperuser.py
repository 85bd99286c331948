"""Django's createsuperuser, with one line and exit status 1 where it would ask for a password
nobody can type (no terminal, no DJANGO_SUPERUSER_PASSWORD): Django's own says it skipped the
user and exits 0, and the next step (a token for that user) fails far from the cause."""

from __future__ import annotations

import os
import sys

from django.contrib.auth import get_user_model
from django.contrib.auth.management.commands import createsuperuser
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import CommandError

PASSWORD = "DJANGO_SUPERUSER_PASSWORD"


class Command(createsuperuser.Command):
    def execute(self, *args, **options):
        # Django asks (or skips, without a terminal) unless --noinput, whatever the environment.
        if options.get("interactive", True) and not (sys.stdin is not None and sys.stdin.isatty()):
            raise CommandError(
                "no terminal to ask the superuser's password at: set DJANGO_SUPERUSER_PASSWORD "
                "and run it with --noinput (make superuser does), or run it at a terminal",
                returncode=1,
            )
        if not options.get("interactive", True) and (password := os.environ.get(PASSWORD)):
            self._check(password, options)
        try:
            return super().execute(*args, **options)
        except CommandError as exc:
            # Django's own messages begin "Error: ", which manage.py's line says already.
            message = str(exc).removeprefix("Error: ")
            raise CommandError(message, returncode=exc.returncode) from None

    @staticmethod
    def _check(password: str, options: dict) -> None:
        """The checks of AUTH_PASSWORD_VALIDATORS, which Django runs on a password typed at its
        prompt and skips for one from the environment."""
        model = get_user_model()
        fields = {
            name: options[name]
            for name in (model.USERNAME_FIELD, *model.REQUIRED_FIELDS)
            if isinstance(options.get(name), str)
        }
        try:
            validate_password(password, model(**fields))
        except ValidationError as exc:
            raise CommandError(
                f"{PASSWORD} is refused: {' '.join(exc.messages)}", returncode=1
            ) from None
