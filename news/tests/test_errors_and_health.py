"""JSON error bodies everywhere, /health/ and the admin."""

import socket
from contextlib import contextmanager

import pytest
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.test import Client
from django.urls import path
from rest_framework.views import APIView

from news.models import Comment, Post
from news_project.urls import handler400, handler403, handler404, handler500  # noqa: F401
from news_project.urls import urlpatterns as project_urlpatterns

pytestmark = pytest.mark.django_db


def broken_view(request):
    raise RuntimeError("something broke")


def forbidden_view(request):
    raise PermissionDenied


class BrokenApiView(APIView):
    permission_classes = []

    def get(self, request):
        raise RuntimeError("something broke inside DRF")


# This module doubles as a URLconf: the project's routes and error handlers, plus views that fail.
urlpatterns = [
    path("test-broken/", broken_view),
    path("test-broken-api/", BrokenApiView.as_view()),
    path("test-forbidden/", forbidden_view),
    *project_urlpatterns,
]


def assert_json_error(response, status: int) -> dict:
    assert response.status_code == status
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert "detail" in body
    return body


# --- Errors --------------------------------------------------------------------------------------


def test_malformed_json_is_400_with_a_json_body(api_client):
    response = api_client.post(
        "/news/posts/", data='{"title": "unterminated', content_type="application/json"
    )

    body = assert_json_error(response, 400)
    assert "JSON parse error" in body["detail"]
    assert not Post.objects.exists()


def test_a_body_that_is_not_json_is_415(api_client):
    response = api_client.post("/news/posts/", data="title=x", content_type="text/plain")

    assert_json_error(response, 415)
    assert not Post.objects.exists()


@pytest.mark.parametrize("url", ["/nowhere/", "/news/nothing/", "/news/posts/1/x/", "/api/"])
def test_unknown_url_is_404_with_a_json_body(anon_client, url):
    body = assert_json_error(anon_client.get(url), 404)

    assert body == {"detail": "Not found."}


def test_news_root_links_to_posts_and_comments(anon_client):
    response = anon_client.get("/news/")

    assert response.status_code == 200
    assert response.json() == {
        "posts": "http://testserver/news/posts/",
        "comments": "http://testserver/news/comments/",
    }


def test_method_not_allowed_is_405_with_a_json_body(api_client):
    assert_json_error(api_client.delete("/news/posts/"), 405)


def test_unknown_host_is_400_with_a_json_body():
    response = Client(HTTP_HOST="evil.example").get("/news/posts/")

    assert assert_json_error(response, 400) == {"detail": "Bad request."}


@pytest.mark.urls(__name__)
@pytest.mark.parametrize("url", ["/test-broken/", "/test-broken-api/"])
def test_server_error_is_500_with_a_json_body(url):
    client = Client(raise_request_exception=False)

    response = client.get(url)

    assert assert_json_error(response, 500) == {"detail": "Internal server error."}


@pytest.mark.urls(__name__)
def test_permission_denied_outside_drf_is_403_with_a_json_body():
    assert_json_error(Client().get("/test-forbidden/"), 403)


# --- Health --------------------------------------------------------------------------------------


def test_health_is_ok_when_the_database_answers(anon_client):
    response = anon_client.get("/health/")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}


def test_health_answers_head(anon_client):
    assert anon_client.head("/health/").status_code == 200


def test_health_refuses_writes_with_a_json_405(anon_client):
    response = anon_client.post("/health/")

    assert_json_error(response, 405)
    assert response["Allow"] == "GET, HEAD"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def database_unreachable():
    """Point the default connection where no database answers; put everything back afterwards."""
    saved_settings = connection.settings_dict.copy()
    # Set aside, not closed: an in-memory SQLite test database lives as long as its connection.
    saved_connection = connection.connection
    connection.connection = None
    if connection.vendor == "sqlite":
        connection.settings_dict["NAME"] = "/nonexistent-directory/news.sqlite3"
    else:
        connection.settings_dict.update(HOST="127.0.0.1", PORT=str(closed_port()))
    try:
        yield
    finally:
        if connection.connection is not None:
            connection.connection.close()
        connection.settings_dict.clear()
        connection.settings_dict.update(saved_settings)
        connection.connection = saved_connection


@pytest.mark.django_db(transaction=True)
def test_health_is_503_when_the_database_does_not_answer(anon_client):
    with database_unreachable():
        response = anon_client.get("/health/")

    assert response.status_code == 503
    assert response.json() == {"status": "error", "database": "unavailable"}
    assert anon_client.get("/health/").status_code == 200


# --- Admin ---------------------------------------------------------------------------------------


def test_admin_login_page_is_reachable(anon_client):
    response = anon_client.get("/admin/login/")

    assert response.status_code == 200
    assert b"Log in" in response.content


def test_admin_needs_a_login(anon_client):
    response = anon_client.get("/admin/news/post/")

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_posts_comments_and_users_are_in_the_admin(admin_client, make_comment):
    make_comment()

    assert admin.site.is_registered(Post) and admin.site.is_registered(Comment)
    for url in ["/admin/", "/admin/news/post/", "/admin/news/comment/", "/admin/auth/user/"]:
        assert admin_client.get(url).status_code == 200, url
    assert admin_client.get(f"/admin/news/post/{Post.objects.get().pk}/change/").status_code == 200
