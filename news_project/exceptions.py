"""DRF's exception handler, with every 404 saying what docs/api.md says: "Not found.", and the
read cache's refusal of a write answered 503."""

from django.http import Http404
from rest_framework import exceptions, views

from news.cache import CacheUnavailable


class ReadCacheUnavailable(exceptions.APIException):
    status_code = 503
    default_code = "cache_unavailable"


def exception_handler(exc, context):
    # DRF passes Http404's own message on ("No Post matches the given query."), naming models.
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, CacheUnavailable):
        exc = ReadCacheUnavailable(str(exc))
    return views.exception_handler(exc, context)
