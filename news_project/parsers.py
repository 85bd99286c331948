"""The request body parser: DRF's JSON parser, hardened against hostile nesting."""

from rest_framework import parsers
from rest_framework.exceptions import ParseError, UnsupportedMediaType


class JSONParser(parsers.JSONParser):
    """JSON bodies; a document nested deeper than Python can recurse is a 400, not a 500. A
    body in a content coding (Content-Encoding: gzip) is refused with 415 (RFC 9110, 8.4.1),
    not read as if it were plain."""

    def parse(self, stream, media_type=None, parser_context=None):
        request = (parser_context or {}).get("request")
        coding = request.META.get("HTTP_CONTENT_ENCODING", "") if request is not None else ""
        if coding.strip().lower() not in ("", "identity"):
            raise UnsupportedMediaType(
                media_type,
                detail=f"Content-Encoding {coding.strip()} is not taken: send the JSON as it is.",
            )
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - the document is nested too deeply.") from None
