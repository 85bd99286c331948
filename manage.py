#!/usr/bin/env python
"""Django's command-line utility for administrative tasks.

Settings come from the environment, then from the project's .env file for whatever the
environment leaves unset (news_project.env.load_env_file). A missing or invalid setting ends
any command with one line on stderr and exit status 2, never a traceback.
"""

import os
import sys

EXIT_CONFIGURATION = 2


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "news_project.settings")
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    from news_project.env import load_env_file

    load_env_file()
    try:
        # Read the settings before Django does, so that a bad value stops here, in one line.
        settings.INSTALLED_APPS  # noqa: B018
        execute_from_command_line(sys.argv)
    except ImproperlyConfigured as exc:
        sys.stderr.write(f"Error: {exc}\n")
        sys.exit(EXIT_CONFIGURATION)


if __name__ == "__main__":
    main()
