"""WSGI entry point (gunicorn news_project.wsgi)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "news_project.settings")

application = get_wsgi_application()

from news_project.startup import check_cache_tables  # noqa: E402  (needs the settings above)

check_cache_tables()
