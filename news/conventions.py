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
    ConditionalGetMiddleware computes it (and the read cache stores it)."""
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

    def filter_queryset(self, queryset):
        """An item's URL names it: the list's filters, ordering and pages do not apply."""
        if self.detail:
            return queryset
        return super().filter_queryset(queryset)

    def options(self, request, *args, **kwargs):
        """OPTIONS of an item that does not exist is a 404, as its GET is."""
        if self.detail:
            self.get_object()
        return super().options(request, *args, **kwargs)

    def get_success_headers(self, data) -> dict[str, str]:
        """A 201 names the new item's URL."""
        path = reverse(f"news:{self.detail_url_name}", args=[data["id"]])
        return {"Location": self.request.build_absolute_uri(path)}

    def check_if_match(self, instance) -> None:
        """With If-Match, a write goes on only while the item is as that ETag says. Checked once
        the body is valid (a bad body is a 400 either way), on the locked row, so the item cannot
        change between this check and the write."""
        if_match = self.request.headers.get("If-Match")
        if if_match is not None and not matches(
            if_match, etag_of(self.get_serializer(instance).data)
        ):
            raise PreconditionFailed

    def perform_update(self, serializer) -> None:
        self.check_if_match(serializer.instance)
        super().perform_update(serializer)

    def perform_destroy(self, instance) -> None:
        self.check_if_match(instance)
        super().perform_destroy(instance)

    def retrieve(self, request, *args, **kwargs):
        instance = self.get_object()
        response = Response(self.get_serializer(instance).data)
        # Whole seconds: two changes within one second keep it, so the ETag is what is exact.
        response["Last-Modified"] = http_date(instance.updated_at.timestamp())
        return response
