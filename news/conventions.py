"""What HTTP clients expect of a resource: Location on a 201, Last-Modified on an item, and
optimistic concurrency with If-Match (412 when the item changed since the ETag sent)."""

from __future__ import annotations

import hashlib

from django.urls import reverse
from django.utils.http import http_date, parse_etags
from rest_framework.exceptions import APIException
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response


class PreconditionFailed(APIException):
    status_code = 412
    default_detail = (
        "The item has changed since the ETag sent in If-Match: nothing was changed. "
        "Read it again (GET), then send the change with its new ETag."
    )
    default_code = "precondition_failed"


def etag_of(data) -> str:
    """The ETag a GET of the item answers: the MD5 of its JSON, as Django's
    ConditionalGetMiddleware computes it (and the cache of reads stores it)."""
    body = JSONRenderer().render(data)
    return f'"{hashlib.md5(body, usedforsecurity=False).hexdigest()}"'


def matches(if_match: str, etag: str) -> bool:
    """If-Match against the item's ETag. A weak tag (W/"...") is the same tag: the server weakens
    its ETags only when it compresses an answer, whose content is the same."""
    tags = parse_etags(if_match)
    return "*" in tags or etag in {tag.removeprefix("W/") for tag in tags}


class ConventionsMixin:
    """For a ModelViewSet of news: `detail_url_name` names the item's URL."""

    detail_url_name: str

    def get_success_headers(self, data) -> dict[str, str]:
        """A 201 names the new item's URL."""
        path = reverse(f"news:{self.detail_url_name}", args=[data["id"]])
        return {"Location": self.request.build_absolute_uri(path)}

    def get_object(self):
        """The item; for a write with If-Match, only while it is as that ETag says (it is
        locked already, so it cannot change between this check and the write)."""
        instance = super().get_object()
        if_match = self.request.headers.get("If-Match")
        if if_match is not None and self.request.method not in ("GET", "HEAD", "OPTIONS"):
            current = etag_of(self.get_serializer(instance).data)
            if not matches(if_match, current):
                raise PreconditionFailed
        return instance

    def retrieve(self, request, *args, **kwargs):
        instance = self.get_object()
        response = Response(self.get_serializer(instance).data)
        # Whole seconds: two changes within one second keep it, so the ETag is what is exact.
        response["Last-Modified"] = http_date(instance.updated_at.timestamp())
        return response
