"""What ends a token: a password change, a deactivation, a deletion, a logout, a rotation."""

import pytest
from rest_framework.test import APIClient

from news.models import Post
from testing.races import ThreadedRequest, race_behind_row_lock

pytestmark = pytest.mark.django_db

TOKEN = "/api/token/"
REFRESH = "/api/token/refresh/"
VERIFY = "/api/token/verify/"
LOGOUT = "/api/token/blacklist/"
PASSWORD = "correct-horse-battery"


def log_in(client, username="alice") -> dict:
    response = client.post(TOKEN, {"username": username, "password": PASSWORD})
    assert response.status_code == 200
    return response.json()


def with_access(access: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    return client


def assert_token_refused(anon_client, tokens: dict) -> None:
    """Neither token works any more: writes, refresh and verify all say 401."""
    assert with_access(tokens["access"]).post("/news/posts/", {"title": "x"}).status_code == 401
    assert anon_client.post(REFRESH, {"refresh": tokens["refresh"]}).status_code == 401
    for token in (tokens["access"], tokens["refresh"]):
        response = anon_client.post(VERIFY, {"token": token})
        assert response.status_code == 401, response.json()
    assert not Post.objects.exists()


# --- Password change, deactivation, deletion -----------------------------------------------------


def test_a_password_change_ends_every_token_of_the_user(anon_client, user):
    tokens = log_in(anon_client)

    user.set_password("a-brand-new-password")
    user.save()

    assert_token_refused(anon_client, tokens)


def test_after_a_password_change_a_new_login_works(anon_client, user):
    log_in(anon_client)
    user.set_password("a-brand-new-password")
    user.save()

    response = anon_client.post(TOKEN, {"username": "alice", "password": "a-brand-new-password"})

    assert response.status_code == 200
    assert (
        with_access(response.json()["access"]).post("/news/posts/", {"title": "x"}).status_code
        == 201
    )


def test_deactivation_ends_every_token_of_the_user(anon_client, user):
    tokens = log_in(anon_client)

    user.is_active = False
    user.save()

    assert_token_refused(anon_client, tokens)


def test_reactivating_a_user_does_not_bring_their_refresh_tokens_back(anon_client, user):
    tokens = log_in(anon_client)
    user.is_active = False
    user.save()
    user.is_active = True
    user.save()

    response = anon_client.post(REFRESH, {"refresh": tokens["refresh"]})

    assert response.status_code == 401
    assert log_in(anon_client)["access"]  # a new login is the way back in


def test_deletion_ends_every_token_of_the_user(anon_client, user):
    tokens = log_in(anon_client)

    user.delete()

    assert_token_refused(anon_client, tokens)


def test_refresh_with_a_deleted_users_token_is_401_not_500(anon_client, user):
    refresh = log_in(anon_client)["refresh"]
    user.delete()

    response = anon_client.post(REFRESH, {"refresh": refresh})

    assert response.status_code == 401
    assert response.json()["code"] == "user_not_found"


def test_verify_answers_200_for_a_token_the_api_accepts(anon_client, user):
    tokens = log_in(anon_client)

    for token in (tokens["access"], tokens["refresh"]):
        assert anon_client.post(VERIFY, {"token": token}).status_code == 200


# --- Logout and rotation -------------------------------------------------------------------------


def test_logout_revokes_the_refresh_token(anon_client, user):
    tokens = log_in(anon_client)

    response = anon_client.post(LOGOUT, {"refresh": tokens["refresh"]})

    assert response.status_code == 200
    assert response.json() == {}
    assert anon_client.post(REFRESH, {"refresh": tokens["refresh"]}).status_code == 401
    assert anon_client.post(VERIFY, {"token": tokens["refresh"]}).status_code == 401


def test_logout_twice_is_401(anon_client, user):
    refresh = log_in(anon_client)["refresh"]
    anon_client.post(LOGOUT, {"refresh": refresh})

    response = anon_client.post(LOGOUT, {"refresh": refresh})

    assert response.status_code == 401


@pytest.mark.parametrize("token", ["garbage", None])
def test_logout_with_no_valid_refresh_token_is_refused(anon_client, token):
    response = anon_client.post(LOGOUT, {} if token is None else {"refresh": token})

    assert response.status_code in (400, 401)
    assert response.json()


def test_refresh_rotates_the_refresh_token_and_refuses_the_old_one(anon_client, user):
    old = log_in(anon_client)["refresh"]

    first = anon_client.post(REFRESH, {"refresh": old})
    reused = anon_client.post(REFRESH, {"refresh": old})

    assert first.status_code == 200
    assert set(first.json()) == {"access", "refresh"}
    assert first.json()["refresh"] != old
    assert reused.status_code == 401
    assert reused.json()["code"] == "token_not_valid"
    newer = anon_client.post(REFRESH, {"refresh": first.json()["refresh"]})
    assert newer.status_code == 200


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_one_refresh_token_sent_twice_at_once_is_honoured_once(user):
    refresh = log_in(APIClient())["refresh"]
    from rest_framework_simplejwt.tokens import RefreshToken

    jti = RefreshToken(refresh)["jti"]
    first = ThreadedRequest(None, "post", REFRESH, {"refresh": refresh})
    second = ThreadedRequest(None, "post", REFRESH, {"refresh": refresh})

    race_behind_row_lock("token_blacklist_outstandingtoken", jti, [first, second], column="jti")

    assert sorted([first.status, second.status]) == [200, 401], (first.body, second.body)
