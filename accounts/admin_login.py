"""django-axes hooks: it guards the admin login only, and answers a lockout in JSON.

The API's token endpoint has its own throttle (JWT_TOKEN_THROTTLE_RATE, 429 with Retry-After),
so axes neither counts nor blocks its failures.
"""

from axes.models import AccessAttempt
from django.conf import settings
from django.http import JsonResponse
from django.urls import reverse
from rest_framework.throttling import BaseThrottle


def client_address(request) -> str:
    """The client's address as the API throttle sees it: X-Forwarded-For behind NUM_PROXIES."""
    return BaseThrottle().get_ident(request)


def attempted_username(request, credentials=None) -> str | None:
    """The username axes records of an attempt, as axes itself finds it, cut to what its
    column holds: the admin's login form does not bound it, and a longer one was a 500."""
    field = settings.AXES_USERNAME_FORM_FIELD
    username = (credentials or getattr(request, "data", request.POST)).get(field)
    if not isinstance(username, str):
        return username
    return username[: AccessAttempt._meta.get_field("username").max_length]


def outside_the_admin(request, credentials=None) -> bool:
    """Axes's whitelist: every login attempt that is not made on the admin site."""
    return not request.path.startswith(reverse("admin:index"))


def lockout_response(request, original_response=None, credentials=None) -> JsonResponse:
    cool_off = int(settings.AXES_COOLOFF_TIME.total_seconds())
    return JsonResponse(
        {
            "detail": f"Too many failed admin logins from this address: locked out for "
            f"{cool_off // 60} minutes."
        },
        status=429,
        headers={"Retry-After": str(cool_off)},
    )
