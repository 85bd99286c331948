"""Content negotiation as DRF's, but a `?format=` an endpoint does not have is a 406 naming the
formats it has, not a 404 that reads as if the item were missing."""

from __future__ import annotations

from rest_framework.exceptions import NotAcceptable
from rest_framework.negotiation import DefaultContentNegotiation


class StrictFormatNegotiation(DefaultContentNegotiation):
    def filter_renderers(self, renderers, format):
        kept = [renderer for renderer in renderers if renderer.format == format]
        if not kept:
            formats = ", ".join(sorted({renderer.format for renderer in renderers}))
            raise NotAcceptable(
                f"format={format} is not a format of this endpoint: it has {formats}."
            )
        return kept
