"""Changes of a user that revoke its tokens, as the tests make them: each a parameter of the
tests that check a revoked token is refused on its next request."""

import pytest


def deactivate(user) -> None:
    user.is_active = False
    user.save()


def change_password(user) -> None:
    user.set_password("a new password, 2026")
    user.save()


def delete(user) -> None:
    user.delete()


REVOCATIONS = [
    pytest.param(deactivate, id="deactivated"),
    pytest.param(change_password, id="password changed"),
    pytest.param(delete, id="deleted"),
]
