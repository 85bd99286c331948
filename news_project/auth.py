from rest_framework.throttling import ScopedRateThrottle
from rest_framework_simplejwt.views import TokenObtainPairView


class ThrottledTokenObtainPairView(TokenObtainPairView):
    """Password login, rate-limited per client to slow down password guessing."""

    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "token"
