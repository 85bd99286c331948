"""Project-wide views: health check, JSON error pages for everything outside DRF, and the
schema's view."""

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import DatabaseError, connection, transaction
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response


# CSRF-exempt so that a write gets this view's JSON 405, not the CSRF failure page: it changes
# nothing whatever the method.
@csrf_exempt
@transaction.non_atomic_requests
def health(request):
    """Liveness and database check for load balancers and container orchestration."""
    if request.method not in ("GET", "HEAD"):
        return JsonResponse(
            {"detail": f'Method "{request.method}" not allowed.'},
            status=405,
            headers={"Allow": "GET, HEAD"},
        )
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError:
        return JsonResponse({"status": "error", "database": "unavailable"}, status=503)
    return JsonResponse({"status": "ok", "database": "ok"})


def not_found(request, exception=None):
    return JsonResponse({"detail": "Not found."}, status=404)


def server_error(request):
    return JsonResponse({"detail": "Internal server error."}, status=500)


def bad_request(request, exception=None):
    if isinstance(exception, RequestDataTooBig):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        return JsonResponse(
            {"detail": f"The request body is larger than the limit of {limit} bytes."}, status=413
        )
    return JsonResponse({"detail": "Bad request."}, status=400)


def permission_denied(request, exception=None):
    return JsonResponse({"detail": "Permission denied."}, status=403)


def csrf_failure(request, reason: str = ""):
    return JsonResponse({"detail": f"CSRF verification failed: {reason}"}, status=403)


class JsonErrorsMixin:
    """For a DRF view whose formats are not JSON (the schema's YAML, the docs' HTML): its
    errors and its OPTIONS are JSON, as every error of the API."""

    def perform_content_negotiation(self, request, force=False):
        if force:  # no format of the request's was found: the answer is an error
            return JSONRenderer(), JSONRenderer.media_type
        return super().perform_content_negotiation(request, force)

    def finalize_response(self, request, response, *args, **kwargs):
        if isinstance(response, Response) and (
            response.status_code >= 400 or request.method == "OPTIONS"
        ):
            request.accepted_renderer = JSONRenderer()
            request.accepted_media_type = JSONRenderer.media_type
        return super().finalize_response(request, response, *args, **kwargs)


class SchemaView(JsonErrorsMixin, SpectacularAPIView):
    """GET /api/schema/: drf-spectacular's view, its errors in JSON."""


class DocsView(JsonErrorsMixin, SpectacularSwaggerView):
    """GET /api/docs/: drf-spectacular's Swagger UI, its errors in JSON."""
