"""Response headers HTTP clients rely on: ETags on reads (HEAD too) and on the answers of
writes, Cache-Control on the API's reads, and CORS with a clear refusal."""

from __future__ import annotations

from urllib.parse import urlsplit

from corsheaders.middleware import CorsMiddleware
from django.conf import settings
from django.http import JsonResponse
from django.middleware.http import ConditionalGetMiddleware
from django.utils.cache import get_conditional_response, set_response_etag
from django.utils.http import parse_http_date_safe

READS = ("GET", "HEAD")
PRECONDITION_FAILED = "The item is not as If-Match or If-Unmodified-Since says: nothing is sent."


class ConditionalMiddleware(ConditionalGetMiddleware):
    """Django's ConditionalGetMiddleware, for HEAD as for GET (the same ETag, and 304), and an
    ETag on a write's answer, the one a GET of the item gives (for the next If-Match)."""

    def process_response(self, request, response):
        if request.method not in READS:
            if (
                200 <= response.status_code < 300
                and not response.streaming
                and response.content
                and self.needs_etag(response)
                and not response.has_header("ETag")
            ):
                set_response_etag(response)
            return response
        if request.method == "HEAD" and not response.streaming and not response.content:
            return response  # nothing to hash: no ETag rather than a wrong one
        if self.needs_etag(response) and not response.has_header("ETag"):
            set_response_etag(response)
        etag = response.get("ETag")
        last_modified = response.get("Last-Modified")
        last_modified = last_modified and parse_http_date_safe(last_modified)
        if not last_modified:
            # No modification date (a list): If-Unmodified-Since is ignored (RFC 9110, 13.1.4);
            # Django would answer 412 to any.
            request.META.pop("HTTP_IF_UNMODIFIED_SINCE", None)
        if etag or last_modified:
            answer = get_conditional_response(
                request, etag=etag, last_modified=last_modified, response=response
            )
            if answer.status_code == 412:  # Django's is empty HTML
                return JsonResponse({"detail": PRECONDITION_FAILED}, status=412)
            return answer
        return response


class ReadCacheControl:
    """Cache-Control on every read of /news/: anonymous answers are the same for everyone
    (`public`), fresh for NEWS_HTTP_MAX_AGE seconds (0: revalidate each time, with the ETag);
    answers to a request with a token are kept by that client only (`private, no-cache`)."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if request.method in READS and request.path.startswith("/news/"):
            if "HTTP_AUTHORIZATION" in request.META:
                response["Cache-Control"] = "private, no-cache"
            else:
                age = settings.NEWS_HTTP_MAX_AGE
                response["Cache-Control"] = f"public, max-age={age}, must-revalidate"
        return response


class RefusingCorsMiddleware(CorsMiddleware):
    """django-cors-headers, where a preflight from an origin that is not allowed is a JSON 403
    that says so, rather than an empty 200 without Access-Control-Allow-Origin."""

    def check_preflight(self, request):
        response = super().check_preflight(request)
        if response is None or self.allowed(request):
            return response
        origin = request.headers.get("origin", "")
        return JsonResponse(
            {
                "detail": f"Cross-origin requests from {origin or 'this page'} are not allowed "
                "(DJANGO_CORS_ALLOWED_ORIGINS)."
            },
            status=403,
        )

    def allowed(self, request) -> bool:
        origin = request.headers.get("origin")
        if not origin:
            return False
        try:
            url = urlsplit(origin)
        except ValueError:
            return False
        return self.origin_found_in_white_lists(origin, url)
