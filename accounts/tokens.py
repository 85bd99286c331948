"""Token serializers that agree with what the API accepts: a token is good only while its user
exists, is active and has not changed their password since it was issued."""

from django.contrib.auth import get_user_model
from rest_framework.exceptions import AuthenticationFailed
from rest_framework_simplejwt import serializers, tokens
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.tokens import Token

# The largest id a row has room for: a user id claim beyond it names nobody.
LARGEST_ID = 2**63 - 1


class UserClaimMixin:
    """A token names its user as this service writes it: by id, a positive integer. A signed
    token with anything else there (only a holder of the key makes one) is an invalid token,
    refused with 401, not a user lookup that fails. No claim at all is simplejwt's to refuse."""

    payload: dict

    def verify(self) -> None:
        super().verify()  # type: ignore[misc]
        user_id = self.payload.get(api_settings.USER_ID_CLAIM)
        if user_id is None:
            return
        # simplejwt writes the id as a string ("7"); a number is taken too.
        if isinstance(user_id, str) and user_id.isascii() and user_id.isdigit():
            user_id = int(user_id)
        if (
            isinstance(user_id, bool)
            or not isinstance(user_id, int)
            or not 1 <= user_id <= LARGEST_ID
        ):
            raise TokenError("Token contained no recognizable user identification")


class AccessToken(UserClaimMixin, tokens.AccessToken):
    """The access token the API accepts (SIMPLE_JWT's AUTH_TOKEN_CLASSES)."""


class RefreshToken(UserClaimMixin, tokens.RefreshToken):
    access_token_class = AccessToken


class UntypedToken(UserClaimMixin, tokens.UntypedToken):
    pass


def check_user(token: Token) -> None:
    """Raise AuthenticationFailed (401) unless the API would accept this token's user now.

    The same checks as every authenticated request (JWTAuthentication.get_user): the user
    exists, is active, and the token's password claim (CHECK_REVOKE_TOKEN) is still current.
    """
    JWTAuthentication().get_user(token)


class TokenRefreshSerializer(serializers.TokenRefreshSerializer):
    """simplejwt's refresh (with rotation and blacklisting), refusing tokens of users the API
    no longer accepts, and honouring one refresh token once even when it is sent twice at once."""

    token_class = RefreshToken

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


class TokenBlacklistSerializer(serializers.TokenBlacklistSerializer):
    """simplejwt's logout, with the refresh token checked as refresh checks it."""

    token_class = RefreshToken
