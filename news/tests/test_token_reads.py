"""Reads with a token answered from the read cache (news/cache/tokens.py): once the token's user
has been checked against the database, the next reads need neither Django nor the database; a
token that fails any check, or whose user changed since, reaches Django and is refused as
always."""

import time
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from news.cache import tokens
from news.models import Post
from testing.clients import cache_said, wsgi_get
from testing.rows import make_post
from testing.users import REVOCATIONS, change_password

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("served")]


def bearer(user) -> str:
    return f"Bearer {RefreshToken.for_user(user).access_token}"


get = wsgi_get


def read(url: str, authorization: str | None = None):
    headers = {"HTTP_AUTHORIZATION": authorization} if authorization is not None else {}
    answer = get(url, **headers)
    return answer.status_code, cache_said(answer), answer


@pytest.fixture
def post(read_cache, user):
    return make_post(title="Read with a token", created_by=user)


def test_a_token_read_is_answered_from_the_cache_once_its_user_was_checked(
    post, user, django_assert_num_queries
):
    url = f"/news/posts/{post.pk}/"
    token = bearer(user)
    first = read(url, token)

    with django_assert_num_queries(0):
        second = read(url, token)

    assert first[:2] == (200, "miss")
    assert second[:2] == (200, "hit")
    assert second[2].content == first[2].content
    # A token read's answer keeps its own headers: never stored by a shared proxy.
    assert second[2]["Cache-Control"] == "private, no-cache"
    anonymous = read(url)
    assert anonymous[:2] == (200, "miss")  # an entry of its own
    assert anonymous[2]["Cache-Control"].startswith("public")


def test_every_user_reads_the_same_entry_once_checked(post, user, other_user):
    url = f"/news/posts/{post.pk}/"
    read(url, bearer(user))
    assert read(url, bearer(user))[1] == "hit"

    # The other user's first read checks that user against the database (no stamp yet).
    assert read(url, bearer(other_user))[:2] == (200, "miss")
    assert read(url, bearer(other_user))[:2] == (200, "hit")
    assert read(url, bearer(user))[:2] == (200, "hit")


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer nonsense",
        "Bearer",
        "Bearer a b",
        "Token abc",
        "Bearer " + "x" * 40 + ".eyJ1c2VyX2lkIjoxfQ.sig",
    ],
)
def test_a_token_that_fails_its_checks_is_refused_by_django_every_time(post, user, authorization):
    url = f"/news/posts/{post.pk}/"
    read(url, bearer(user))
    read(url, bearer(user))

    # "Token abc" is no bearer token: Django reads it as anonymous, and so it stays.
    expected = 200 if authorization.startswith("Token") else 401
    for _ in range(2):
        assert read(url, authorization)[:2] == (expected, None)


def test_an_expired_token_or_a_refresh_token_is_refused(post, user):
    url = f"/news/posts/{post.pk}/"
    read(url, bearer(user))
    expired = AccessToken.for_user(user)
    expired.set_exp(lifetime=timedelta(seconds=-1))
    refresh = RefreshToken.for_user(user)

    assert read(url, f"Bearer {expired}")[:2] == (401, None)
    assert read(url, f"Bearer {refresh}")[:2] == (401, None)


def test_a_token_answered_from_the_cache_is_refused_once_it_expires(post, user):
    url = f"/news/posts/{post.pk}/"
    token = AccessToken.for_user(user)
    token.set_exp(lifetime=timedelta(seconds=2))
    read(url, f"Bearer {token}")
    assert read(url, f"Bearer {token}")[:2] == (200, "hit")

    time.sleep(2.1)

    assert read(url, f"Bearer {token}")[:2] == (401, None)


@pytest.mark.parametrize("change", REVOCATIONS)
def test_a_token_of_a_user_changed_since_is_refused_on_its_next_request(post, user, change):
    url = f"/news/posts/{post.pk}/"
    token = bearer(user)
    read(url, token)
    assert read(url, token)[:2] == (200, "hit")

    change(get_user_model().objects.get(pk=user.pk))

    status, cache, answer = read(url, token)
    assert (status, cache) == (401, None)
    assert answer.json()["code"] in {"user_inactive", "password_changed", "user_not_found"}


def test_a_login_leaves_the_tokens_as_good_as_they_were(post, user, anon_client):
    url = f"/news/posts/{post.pk}/"
    token = bearer(user)
    read(url, token)
    user.set_password("pw-for-login-1")
    user.save()
    token = bearer(get_user_model().objects.get(pk=user.pk))
    read(url, token)
    assert read(url, token)[1] == "hit"

    answer = anon_client.post(
        "/api/token/", {"username": user.username, "password": "pw-for-login-1"}
    )

    assert answer.status_code == 200
    assert read(url, token)[:2] == (200, "hit")


def test_a_flush_leaves_no_token_of_its_users_answered_from_the_cache(post, user):
    url = f"/news/posts/{post.pk}/"
    token = bearer(user)
    read(url, token)
    assert read(url, token)[1] == "hit"

    call_command("flush", interactive=False)  # users deleted without their signals
    # Another user, after it, fills the entry of the same URL again.
    newcomer = get_user_model().objects.create_user(pk=user.pk + 100, username="newcomer")
    post = make_post(title="After the flush", created_by=newcomer)
    url = f"/news/posts/{post.pk}/"
    read(url, bearer(newcomer))
    assert read(url, bearer(newcomer))[:2] == (200, "hit")

    assert read(url, token)[:2] == (401, None)


def test_a_change_of_users_without_their_signals_is_seen_once_the_stamp_expires(
    post, user, monkeypatch
):
    monkeypatch.setattr(tokens, "USER_STAMP_TTL", 1)
    url = f"/news/posts/{post.pk}/"
    token = bearer(user)
    read(url, token)
    assert read(url, token)[1] == "hit"

    get_user_model().objects.filter(pk=user.pk).update(is_active=False)
    time.sleep(1.2)

    assert read(url, token)[:2] == (401, None)


def test_a_write_answered_is_seen_by_the_next_token_read(post, user, api_client):
    url = f"/news/posts/{post.pk}/"
    token = bearer(user)
    read(url, token)
    assert read(url, token)[1] == "hit"

    assert api_client.patch(url, {"title": "Edited"}).status_code == 200

    status, cache, answer = read(url, token)
    assert (status, cache, answer.json()["title"]) == (200, "miss", "Edited")
    Post.objects.filter(pk=post.pk).delete()
    assert read(url, token)[0] == 404


def test_a_redis_back_from_an_older_snapshot_refuses_a_token_revoked_since(
    redis_with_snapshots, user, other_user, caplog
):
    """A Redis with persistence (RDB or AOF) that restarts, or a replica promoted before it had
    every write, brings back an old generation of the user with the stamp made under it."""
    post = make_post(title="Read with a token", created_by=user)
    url = f"/news/posts/{post.pk}/"
    token = bearer(user)
    read(url, token)
    assert read(url, token)[:2] == (200, "hit")
    redis_with_snapshots.save()  # what the snapshot holds: the user's generation and stamp
    change_password(get_user_model().objects.get(pk=user.pk))
    assert read(url, token)[:2] == (401, None)

    redis_with_snapshots.restart()

    assert read(url, token)[:2] == (401, None)
    assert "Redis holds keys written before its data was last replaced" in caplog.text
    # The cache is in use again: a token still good is answered from it once checked.
    other = bearer(other_user)
    assert read(url, other)[:2] == (200, "miss")
    assert read(url, other)[:2] == (200, "hit")


def test_a_token_padded_with_blanks_is_kept_once_however_often_it_comes(post, user):
    """simplejwt takes "Bearer   <token>" as "Bearer <token>": what a process keeps of the
    tokens it checked is one token each, however a client pads its header."""
    url = f"/news/posts/{post.pk}/"
    token = str(RefreshToken.for_user(user).access_token)
    tokens._validated.clear()

    for blanks in range(1, 40):
        assert read(url, "Bearer" + " " * blanks + token)[0] == 200

    assert list(tokens._validated) == [token.encode()]
