"""Writes with a token (news/cache/tokens.py): while the user's stamp in Redis holds, a process
takes the user it read before instead of reading it again; a user changed since is read again,
and its token refused as always."""

import time
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from news.cache import tokens
from news.models import Post
from testing.rows import make_post
from testing.users import REVOCATIONS

pytestmark = [pytest.mark.django_db(transaction=True)]


def writer(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(user).access_token}")
    return client


def users_read(client: APIClient, title: str) -> tuple[int, int]:
    """The status of a create, and how many times it read the users' table."""
    with CaptureQueriesContext(connection) as queries:
        status = client.post("/news/posts/", {"title": title}, format="json").status_code
    return status, sum('FROM "auth_user"' in q["sql"] for q in queries.captured_queries)


def test_a_token_write_reads_its_user_once_while_the_stamp_holds(read_cache, user):
    client = writer(user)

    assert users_read(client, "first") == (201, 1)
    assert users_read(client, "second") == (201, 0)
    assert users_read(client, "third") == (201, 0)
    assert list(Post.objects.order_by("pk").values_list("title", "created_by")) == [
        ("first", user.pk),
        ("second", user.pk),
        ("third", user.pk),
    ]


def test_without_redis_every_token_write_reads_its_user(user):
    client = writer(user)

    assert users_read(client, "first") == (201, 1)
    assert users_read(client, "second") == (201, 1)


@pytest.mark.parametrize("change", REVOCATIONS)
def test_a_token_of_a_user_changed_since_is_refused_on_its_next_write(read_cache, user, change):
    client = writer(user)
    assert users_read(client, "kept")[0] == 201
    assert users_read(client, "kept too") == (201, 0)

    change(get_user_model().objects.get(pk=user.pk))

    answer = client.post("/news/posts/", {"title": "refused"}, format="json")
    assert answer.status_code == 401
    assert answer.json()["code"] in {"user_inactive", "password_changed", "user_not_found"}
    assert not Post.objects.filter(title="refused").exists()


def staff_editing(user, other_user) -> tuple[APIClient, str]:
    """`user` made staff, and its client, which has just edited a post of `other_user`'s (200);
    that post's URL."""
    post = make_post(title="someone else's", created_by=other_user)
    user.is_staff = True
    user.save()
    client = writer(user)
    url = f"/news/posts/{post.pk}/"
    assert client.patch(url, {"body": "as staff"}, format="json").status_code == 200
    return client, url


def test_a_staff_flag_taken_away_is_seen_by_the_next_write(read_cache, user, other_user):
    """The user a write takes is the user as it is now: any save of it is a change."""
    client, url = staff_editing(user, other_user)

    user.is_staff = False
    user.save()

    answer = client.patch(url, {"body": "no longer"}, format="json")
    assert answer.status_code == 403


def test_a_change_of_users_without_their_signals_is_seen_by_writes_once_the_stamp_expires(
    read_cache, user, monkeypatch
):
    monkeypatch.setattr(tokens, "USER_STAMP_TTL", 1)
    client = writer(user)
    assert users_read(client, "kept")[0] == 201

    get_user_model().objects.filter(pk=user.pk).update(is_active=False)
    time.sleep(1.2)

    assert client.post("/news/posts/", {"title": "refused"}, format="json").status_code == 401


def test_a_user_another_process_read_again_is_read_again_here(read_cache, user, other_user):
    """A change without signals (QuerySet.update) is seen once the stamp expires; the process
    that reads the user first then stamps it again, under the same generation. This process's
    copy was read before the change: it must not count as the user the new stamp vouches for."""
    client, url = staff_editing(user, other_user)
    kept = tokens._users._kept.copy()  # this process's copy of the staff user

    get_user_model().objects.filter(pk=user.pk).update(is_staff=False)
    read_cache.client.delete(f"{read_cache.prefix}stamp:user:{user.pk}")  # it expired
    tokens._users.clear()  # another process: it reads the user and stamps it again
    assert client.patch(url, {"body": "elsewhere"}, format="json").status_code == 403
    tokens._users._kept.update(kept)  # back in this process, which kept the staff user

    answer = client.patch(url, {"body": "stale"}, format="json")
    assert answer.status_code == 403


@pytest.mark.parametrize("cached", [True, False], ids=["with-redis", "without-redis"])
def test_a_token_taken_before_is_refused_once_it_expires(cached, request, user):
    """A process verifies a token once and keeps it until it expires: then it is refused."""
    if cached:
        request.getfixturevalue("read_cache")
    token = RefreshToken.for_user(user).access_token
    token.set_exp(lifetime=timedelta(seconds=1))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert client.post("/news/posts/", {"title": "in time"}, format="json").status_code == 201
    assert str(token).encode() in tokens._validated

    time.sleep(max(0.0, token["exp"] - time.time()) + 0.1)
    response = client.post("/news/posts/", {"title": "too late"}, format="json")

    assert response.status_code == 401
    assert response.json()["code"] == "token_not_valid"
    assert list(Post.objects.values_list("title", flat=True)) == ["in time"]
