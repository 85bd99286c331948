"""The sync seen from outside: Prometheus metrics and a health check that follows its lag.

Plain Django views (no DRF): they answer monitoring systems, not API clients. Neither is part of
`/health/`, which load balancers use and which the sync never makes fail. Both tell how much is
being written, so both need `Authorization: Bearer <METRICS_TOKEN>`; without a METRICS_TOKEN
they answer only a development server (DEBUG on).
"""

from __future__ import annotations

import hmac

from django.conf import settings
from django.db import DatabaseError, transaction
from django.http import HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from sync import metrics, monitoring

READ_METHODS = ("GET", "HEAD")


# CSRF-exempt, as /health/ is, so that a write gets the JSON 405, not the CSRF failure: they
# change nothing whatever the method.
@csrf_exempt
@transaction.non_atomic_requests
def metrics_view(request):
    """GET /metrics: Prometheus' text format."""
    if request.method not in READ_METHODS:
        return _not_allowed(request)
    if refused := _refused(request):
        return refused
    try:
        body, content_type = metrics.exposition(request.headers.get("Accept", ""))
    except DatabaseError:
        return JsonResponse({"status": "error", "database": "unavailable"}, status=503)
    return HttpResponse(body, content_type=content_type)


@csrf_exempt
@transaction.non_atomic_requests
def sync_health_view(request):
    """GET /health/sync/: 200 while the oldest waiting change is younger than
    SYNC_HEALTH_MAX_AGE seconds, else 503; the figures in the body either way."""
    if request.method not in READ_METHODS:
        return _not_allowed(request)
    if refused := _refused(request):
        return refused
    try:
        health = monitoring.health(max_age=settings.SYNC_HEALTH_MAX_AGE)
    except DatabaseError:
        return JsonResponse({"status": "error", "database": "unavailable"}, status=503)
    return JsonResponse(health.as_dict(), status=200 if health.ok else 503)


def _refused(request) -> JsonResponse | None:
    """The answer to a request without the bearer token these figures need, if it has none."""
    token = settings.METRICS_TOKEN
    if not token:
        if settings.DEBUG:
            return None
        return JsonResponse(
            {"detail": "Set METRICS_TOKEN to read the sync's figures; without it they are "
             "answered only with DJANGO_DEBUG on."},
            status=403,
        )  # fmt: skip
    sent = request.headers.get("Authorization", "").encode()
    if hmac.compare_digest(sent, f"Bearer {token}".encode()):
        return None
    return JsonResponse(
        {"detail": "Authentication credentials were not provided or are wrong."},
        status=401,
        headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
    )


def _not_allowed(request) -> JsonResponse:
    return JsonResponse(
        {"detail": f'Method "{request.method}" not allowed.'},
        status=405,
        headers={"Allow": "GET, HEAD"},
    )
