"""Receivers that end a user's sessions when the user is deactivated."""

from django.contrib.auth import get_user_model
from django.db.models.signals import post_save
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken


def blacklist_tokens_of_inactive_user(sender, instance, **kwargs) -> None:
    """An inactive user's tokens are refused anyway; blacklisting their refresh tokens keeps a
    later reactivation from bringing the old sessions back: the user logs in again."""
    if instance.is_active:
        return
    outstanding = OutstandingToken.objects.filter(user=instance, blacklistedtoken__isnull=True)
    BlacklistedToken.objects.bulk_create(
        [BlacklistedToken(token=token) for token in outstanding], ignore_conflicts=True
    )


def connect_receivers() -> None:
    post_save.connect(
        blacklist_tokens_of_inactive_user,
        sender=get_user_model(),
        dispatch_uid="accounts.blacklist_tokens_of_inactive_user",
    )
