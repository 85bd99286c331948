"""DRF's exception handler, with every 404 saying what docs/api.md says: "Not found."."""

from django.http import Http404
from rest_framework import exceptions, views


def exception_handler(exc, context):
    # DRF passes Http404's own message on ("No Post matches the given query."), naming models.
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    return views.exception_handler(exc, context)
