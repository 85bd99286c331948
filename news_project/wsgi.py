"""WSGI entry point: Django, behind the read cache (anonymous reads answered from Redis).

`manage.py serve` runs it in threads behind news_project/asgi.py, which reads request bodies
first; `runserver` (make run) serves it directly.
"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "news_project.settings")

django_application = get_wsgi_application()

# Imported once Django is set up (the settings above).
from news.cache import ReadCache  # noqa: E402
from news_project.startup import check_cache_tables  # noqa: E402

# A read the cache holds is answered before Django runs (news/cache/); without REDIS_URL this
# only passes every request on.
application = ReadCache(django_application)

check_cache_tables()
