"""Request middleware: canonical URLs without silently redirecting a write; JSON for the
errors Django's own views answer without a body."""

from django.http import HttpResponseNotAllowed, JsonResponse
from django.middleware.common import CommonMiddleware

from news.cache import CacheUnavailable

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class CanonicalUrlMiddleware(CommonMiddleware):
    """Django's CommonMiddleware, except that a write to a URL without its trailing slash is a
    JSON 404 naming the right URL. A redirect would make most clients resend it as a GET, so
    the write would be lost without a word; reads are still redirected (301)."""

    def should_redirect_with_slash(self, request) -> bool:
        return request.method in SAFE_METHODS and super().should_redirect_with_slash(request)

    def process_response(self, request, response):
        if (
            response.status_code == 404
            and request.method not in SAFE_METHODS
            and super().should_redirect_with_slash(request)
        ):
            canonical = request.path + "/"
            return JsonResponse(
                {
                    "detail": f"Not found. Did you mean {canonical} (with a trailing slash)? "
                    "Writes are not redirected."
                },
                status=404,
            )
        return super().process_response(request, response)


class CacheUnavailableMiddleware:
    """A write refused because Redis could not be told of it (news.cache), made outside the API
    (the admin): 503 with the reason, as the API answers it, rather than a 500."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if isinstance(exception, CacheUnavailable):
            return JsonResponse({"detail": str(exception)}, status=503)
        return None


class JsonNotAllowedMiddleware:
    """A method a Django view does not take (the admin's logout, which takes only POST) is
    Django's HttpResponseNotAllowed, an empty HTML answer: it gets the JSON body the API's
    405 has, with its Allow header."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if isinstance(response, HttpResponseNotAllowed) and not response.content:
            detail = {"detail": f'Method "{request.method}" not allowed.'}
            return JsonResponse(detail, status=405, headers={"Allow": response["Allow"]})
        return response
