"""Token serializers that agree with what the API accepts: a token is good only while its user
exists, is active and has not changed their password since it was issued."""

from django.contrib.auth import get_user_model
from rest_framework.exceptions import AuthenticationFailed
from rest_framework_simplejwt import serializers
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.tokens import Token, UntypedToken


def check_user(token: Token) -> None:
    """Raise AuthenticationFailed (401) unless the API would accept this token's user now.

    The same checks as every authenticated request (JWTAuthentication.get_user): the user
    exists, is active, and the token's password claim (CHECK_REVOKE_TOKEN) is still current.
    """
    JWTAuthentication().get_user(token)


class TokenRefreshSerializer(serializers.TokenRefreshSerializer):
    """simplejwt's refresh (with rotation and blacklisting), refusing tokens of users the API
    no longer accepts, and honouring one refresh token once even when it is sent twice at once."""

    def validate(self, attrs):
        refresh = self.token_class(attrs["refresh"])
        check_user(refresh)
        # Hold the token's row until this request's transaction ends: a second request with the
        # same token waits here, then finds it blacklisted by the first (the checks run again in
        # super().validate()).
        OutstandingToken.objects.select_for_update().filter(
            jti=refresh[api_settings.JTI_CLAIM]
        ).first()
        try:
            return super().validate(attrs)
        except get_user_model().DoesNotExist:  # deleted meanwhile
            raise AuthenticationFailed("User not found", code="user_not_found") from None


class TokenVerifySerializer(serializers.TokenVerifySerializer):
    """A token verifies only if the API would accept it: signature, expiry, blacklist, user."""

    def validate(self, attrs):
        token = UntypedToken(attrs["token"])
        # simplejwt answers a blacklisted token with a 400; any other refused token is a 401.
        if BlacklistedToken.objects.filter(token__jti=token.get(api_settings.JTI_CLAIM)).exists():
            raise TokenError("Token is blacklisted")
        check_user(token)
        return {}
