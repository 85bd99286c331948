"""The login endpoint; refresh, verify and logout are simplejwt's views with our serializers."""

from django.db import transaction
from django.utils.decorators import method_decorator
from rest_framework_simplejwt.views import TokenObtainPairView

from accounts.throttles import AtomicScopedRateThrottle


# Outside the request transaction: DRF rolls a request back on every error answer, and with the
# database cache that would roll back the count of a failed login along with it.
@method_decorator(transaction.non_atomic_requests, name="dispatch")
class ThrottledTokenObtainPairView(TokenObtainPairView):
    """Password login, rate-limited per client to slow down password guessing."""

    throttle_classes = [AtomicScopedRateThrottle]
    throttle_scope = "token"
