"""The login endpoint; refresh, verify and logout are simplejwt's views with our serializers."""

from django.db import transaction
from django.utils.decorators import method_decorator
from drf_spectacular.utils import extend_schema
from rest_framework_simplejwt import views
from rest_framework_simplejwt.views import TokenObtainPairView

from accounts.throttles import AtomicScopedRateThrottle

# What verify and logout answer: an empty object.
EMPTY = {"type": "object", "properties": {}, "additionalProperties": False, "description": "{}"}


# Outside the request transaction: DRF rolls a request back on every error answer, and with the
# database cache that would roll back the count of a failed login along with it.
@method_decorator(transaction.non_atomic_requests, name="dispatch")
class ThrottledTokenObtainPairView(TokenObtainPairView):
    """Password login, rate-limited per client to slow down password guessing."""

    throttle_classes = [AtomicScopedRateThrottle]
    throttle_scope = "token"


@extend_schema(responses={200: EMPTY})
class TokenVerifyView(views.TokenVerifyView):
    """simplejwt's verify view: 200 with {} for a token the API accepts now."""


@extend_schema(responses={200: EMPTY})
class TokenBlacklistView(views.TokenBlacklistView):
    """simplejwt's logout: 200 with {} once the refresh token is blacklisted."""
