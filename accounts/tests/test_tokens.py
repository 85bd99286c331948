"""JWT: obtaining, refreshing and verifying tokens, the login throttle, tokens that stop working."""

import threading
from functools import partial

import pytest
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from news.models import Post
from testing.clients import bearer_client

pytestmark = pytest.mark.django_db

TOKEN = "/api/token/"
REFRESH = "/api/token/refresh/"
VERIFY = "/api/token/verify/"
PASSWORD = "correct-horse-battery"


def obtain(client, username="alice", password=PASSWORD):
    return client.post(TOKEN, {"username": username, "password": password})


def three_bursts(attempts: list) -> None:
    """Each attempt in a thread of its own, all at once; three times in the same minute."""
    for _ in range(3):
        threads = [threading.Thread(target=attempt) for attempt in attempts]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)


def test_obtain_a_token_pair_and_use_it_to_write(anon_client, user):
    response = obtain(anon_client)

    assert response.status_code == 200
    assert set(response.json()) == {"access", "refresh"}
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {response.json()['access']}")
    created = client.post("/news/posts/", {"title": "With a real token"})
    assert created.status_code == 201
    assert Post.objects.get().created_by == user


@pytest.mark.parametrize(
    ("username", "password"), [("alice", "wrong-password"), ("nobody", PASSWORD)]
)
def test_wrong_credentials_are_401(anon_client, user, username, password):
    response = obtain(anon_client, username, password)

    assert response.status_code == 401
    assert "detail" in response.json()


def test_missing_credentials_are_400_naming_the_fields(anon_client):
    response = anon_client.post(TOKEN, {})

    assert response.status_code == 400
    assert set(response.json()) == {"username", "password"}


def test_refresh_gives_a_new_access_token(anon_client, user):
    refresh = obtain(anon_client).json()["refresh"]

    response = anon_client.post(REFRESH, {"refresh": refresh})

    assert response.status_code == 200
    access = response.json()["access"]
    assert str(AccessToken(access)["user_id"]) == str(user.pk)
    anon_client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    assert anon_client.post("/news/posts/", {"title": "x"}).status_code == 201


def test_refresh_with_an_access_token_is_401(anon_client, user):
    access = obtain(anon_client).json()["access"]

    response = anon_client.post(REFRESH, {"refresh": access})

    assert response.status_code == 401


def test_verify_accepts_a_valid_token(anon_client, user):
    access = obtain(anon_client).json()["access"]

    response = anon_client.post(VERIFY, {"token": access})

    assert response.status_code == 200
    assert response.json() == {}


@pytest.mark.parametrize("token", ["not-a-token", "a.b.c"])
def test_verify_rejects_an_invalid_token(anon_client, token):
    response = anon_client.post(VERIFY, {"token": token})

    assert response.status_code == 401
    assert response.json()["code"] == "token_not_valid"


def test_expired_access_token_is_401(anon_client, user):
    token = AccessToken.for_user(user)
    token.set_exp(lifetime=-token.lifetime)
    anon_client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")

    response = anon_client.post("/news/posts/", {"title": "Too late"})

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'
    assert not Post.objects.exists()


def test_garbage_bearer_token_is_401_even_for_reads(anon_client):
    anon_client.credentials(HTTP_AUTHORIZATION="Bearer garbage")

    response = anon_client.get("/news/posts/")

    assert response.status_code == 401


def test_deactivated_users_existing_access_token_stops_working(user):
    client = bearer_client(user)
    assert client.post("/news/posts/", {"title": "Before"}).status_code == 201

    user.is_active = False
    user.save()
    response = client.post("/news/posts/", {"title": "After"})

    assert response.status_code == 401
    assert list(Post.objects.values_list("title", flat=True)) == ["Before"]


def test_deactivated_users_refresh_token_stops_working(anon_client, user):
    refresh = str(RefreshToken.for_user(user))
    user.is_active = False
    user.save()

    response = anon_client.post(REFRESH, {"refresh": refresh})

    assert response.status_code == 401


def test_deactivated_user_cannot_obtain_a_token(anon_client, user):
    user.is_active = False
    user.save()

    assert obtain(anon_client).status_code == 401


# --- Throttle ------------------------------------------------------------------------------------


def test_token_endpoint_allows_ten_attempts_a_minute_then_429(anon_client, user):
    # Every attempt counts, failed or not; empty bodies keep the test free of password hashing.
    statuses = [anon_client.post(TOKEN, {}).status_code for _ in range(10)]

    response = obtain(anon_client)

    assert statuses == [400] * 10
    assert response.status_code == 429
    assert 0 < int(response["Retry-After"]) <= 60
    assert "detail" in response.json()


def test_token_throttle_ignores_a_forged_forwarded_for_header(anon_client):
    for attempt in range(10):
        anon_client.post(TOKEN, {}, HTTP_X_FORWARDED_FOR=f"203.0.113.{attempt}")

    response = anon_client.post(TOKEN, {}, HTTP_X_FORWARDED_FOR="203.0.113.99")

    assert response.status_code == 429


def test_token_throttle_counts_each_client_address_apart(anon_client):
    for _ in range(10):
        anon_client.post(TOKEN, {}, REMOTE_ADDR="198.51.100.1")

    assert anon_client.post(TOKEN, {}, REMOTE_ADDR="198.51.100.1").status_code == 429
    assert anon_client.post(TOKEN, {}, REMOTE_ADDR="198.51.100.2").status_code == 400


def test_api_reads_are_not_throttled(anon_client):
    statuses = {anon_client.get("/news/posts/").status_code for _ in range(15)}

    assert statuses == {200}


@pytest.mark.django_db(transaction=True)
def test_with_the_database_cache_the_throttle_count_is_shared_through_the_database(
    anon_client, settings
):
    from django.core.management import call_command
    from django.db import connection

    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "django_cache",
        }
    }
    call_command("createcachetable", verbosity=0)

    statuses = [anon_client.post(TOKEN, {}).status_code for _ in range(11)]

    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM django_cache WHERE cache_key LIKE %s", ["%throttle%"])
        (rows,) = cursor.fetchone()
    assert statuses == [400] * 10 + [429], statuses
    assert rows == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_attempts_with_the_database_cache_never_pass_the_limit(settings):
    from django.core.cache import cache
    from django.core.management import call_command
    from django.db import connections

    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "django_cache",
        }
    }
    call_command("createcachetable", verbosity=0)
    cache.clear()  # the table outlives the tests that wrote it
    start = threading.Barrier(16)
    statuses: list[int] = []

    def attempt() -> None:
        try:
            client = APIClient()
            start.wait(timeout=10)
            statuses.append(client.post(TOKEN, {}).status_code)
        finally:
            connections.close_all()

    three_bursts([attempt] * 16)

    assert len(statuses) == 48
    assert statuses.count(400) == 10, statuses
    assert statuses.count(429) == 38


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_attempts_at_once_through_two_servers_with_the_database_cache_never_pass_the_limit(
    settings,
):
    """The count is shared through the database: so is the lock on it, across processes."""
    import requests
    from django.core.management import call_command
    from django.db import connection

    from testing.processes import Served

    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "django_cache",
        }
    }
    call_command("createcachetable", verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM django_cache")  # the table outlives the tests that wrote it
    with Served(DJANGO_CACHE="database") as first, Served(DJANGO_CACHE="database") as second:
        start = threading.Barrier(16)
        statuses: list[int] = []

        def attempt(server: Served) -> None:
            start.wait(timeout=10)
            body = {"username": "alice", "password": "wrong"}
            statuses.append(requests.post(server.url + TOKEN, json=body, timeout=30).status_code)

        three_bursts([partial(attempt, server) for server in [first, second] * 8])

    assert len(statuses) == 48
    assert statuses.count(401) == 10, statuses
    assert statuses.count(429) == 38


@pytest.mark.parametrize("user_id", ["abc", "", " 1", "\u0661", "0", [1], 1.5, True, 0, 2**70])
@pytest.mark.parametrize("where", ["write", "refresh", "verify", "logout"])
def test_a_signed_token_naming_its_user_by_no_id_is_refused_with_401(
    anon_client, user, user_id, where
):
    """Only a key holder makes one; still a 401 naming the token, not a 500."""
    token = RefreshToken.for_user(user) if where in ("refresh", "logout") else AccessToken()
    token["user_id"] = user_id

    if where == "write":
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        response = client.post("/news/posts/", {"title": "Not written"}, format="json")
    else:
        path, field = {
            "refresh": (REFRESH, "refresh"),
            "verify": (VERIFY, "token"),
            "logout": ("/api/token/blacklist/", "refresh"),
        }[where]
        response = anon_client.post(path, {field: str(token)}, format="json")

    assert response.status_code == 401, response.content
    assert response.json()["code"] == "token_not_valid"
    assert not Post.objects.exists()


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "bEaReR"])
def test_the_authorization_scheme_is_taken_in_any_case(user, scheme):
    """RFC 9110, 11.1: "Bearer" is a case-insensitive name."""
    token = RefreshToken.for_user(user).access_token
    client = APIClient()

    client.credentials(HTTP_AUTHORIZATION=f"{scheme} {token}")
    created = client.post("/news/posts/", {"title": "With any case"}, format="json")

    assert created.status_code == 201, created.content
    assert Post.objects.get().created_by == user
    client.credentials(HTTP_AUTHORIZATION=f"{scheme} not-a-token")
    assert client.get("/news/posts/").status_code == 401  # a token refused, not no token
