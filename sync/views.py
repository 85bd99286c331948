"""The sync seen from outside: Prometheus metrics and a health check that follows its lag.

Plain Django views (no DRF): they answer monitoring systems, not API clients. Neither is part of
`/health/`, which load balancers use and which the sync never makes fail.
"""

from __future__ import annotations

import hmac

from django.conf import settings
from django.db import DatabaseError, transaction
from django.http import HttpResponse, JsonResponse

from sync import metrics, monitoring

READ_METHODS = ("GET", "HEAD")


@transaction.non_atomic_requests
def metrics_view(request):
    """GET /metrics: Prometheus' text format; a bearer token when METRICS_TOKEN is set."""
    if request.method not in READ_METHODS:
        return _not_allowed(request)
    token = settings.METRICS_TOKEN
    if token and not hmac.compare_digest(
        request.headers.get("Authorization", "").encode(), f"Bearer {token}".encode()
    ):
        return JsonResponse(
            {"detail": "Authentication credentials were not provided or are wrong."},
            status=401,
            headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
        )
    try:
        body, content_type = metrics.exposition(request.headers.get("Accept", ""))
    except DatabaseError:
        return JsonResponse({"status": "error", "database": "unavailable"}, status=503)
    return HttpResponse(body, content_type=content_type)


@transaction.non_atomic_requests
def sync_health_view(request):
    """GET /health/sync/: 200 while the oldest waiting change is younger than
    SYNC_HEALTH_MAX_AGE seconds, else 503; the figures in the body either way."""
    if request.method not in READ_METHODS:
        return _not_allowed(request)
    try:
        health = monitoring.health(max_age=settings.SYNC_HEALTH_MAX_AGE)
    except DatabaseError:
        return JsonResponse({"status": "error", "database": "unavailable"}, status=503)
    return JsonResponse(health.as_dict(), status=200 if health.ok else 503)


def _not_allowed(request) -> JsonResponse:
    return JsonResponse(
        {"detail": f'Method "{request.method}" not allowed.'},
        status=405,
        headers={"Allow": "GET, HEAD"},
    )
