"""Input an attacker or a sloppy client sends: never a 500, never a silent surprise."""

import pytest
from django.conf import settings
from django.test import Client

from news.models import Comment, Post

pytestmark = pytest.mark.django_db

NESTING = 2000  # about 4 KB of brackets, deeper than Python's recursion limit


def deeply_nested(opening: str, closing: str) -> str:
    return opening * NESTING + closing * NESTING


# --- Deeply nested JSON --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    ["/news/posts/", "/news/comments/", "/api/token/", "/api/token/refresh/", "/api/token/verify/"],
)
@pytest.mark.parametrize("brackets", [("[", "]"), ('{"a":', "}")], ids=["arrays", "objects"])
def test_deeply_nested_json_is_400_not_500(api_client, url, brackets):
    response = api_client.post(url, data=deeply_nested(*brackets), content_type="application/json")

    assert response.status_code == 400
    assert "nested too deeply" in response.json()["detail"]


def test_deeply_nested_json_in_an_update_is_400(api_client, user, make_post):
    post = make_post(created_by=user, title="Kept")

    response = api_client.patch(
        f"/news/posts/{post.pk}/", data=deeply_nested("[", "]"), content_type="application/json"
    )

    assert response.status_code == 400
    post.refresh_from_db()
    assert post.title == "Kept"


def test_json_nested_a_little_is_still_an_ordinary_field_error(api_client):
    response = api_client.post("/news/posts/", {"title": [[["nested"]]]})

    assert response.status_code == 400
    assert list(response.json()) == ["title"]


# --- post_id -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw_post_id",
    ["1e999", "-1e999", "1.9", "1.0", '"\u0661"', '"1"', "true", "[1]", '{"id": 1}'],
    ids=[
        "huge-float",
        "huge-negative",
        "fraction",
        "float",
        "arabic-digit",
        "string",
        "bool",
        "array",
        "object",
    ],
)
def test_post_id_must_be_a_json_integer(api_client, post_1, raw_post_id):
    body = f'{{"post_id": {raw_post_id}, "name": "Ann", "email": "ann@example.com"}}'

    response = api_client.post("/news/comments/", data=body, content_type="application/json")

    assert response.status_code == 400
    assert list(response.json()) == ["post_id"]
    assert Comment.objects.count() == 1


@pytest.mark.parametrize("post_id", [0, -1, 2**63, 2**70])
def test_post_id_out_of_range_is_400_not_500(api_client, make_post, post_id):
    make_post()

    response = api_client.post(
        "/news/comments/", {"post_id": post_id, "name": "Ann", "email": "ann@example.com"}
    )

    assert response.status_code == 400
    assert list(response.json()) == ["post_id"]


# --- String fields take only strings -------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"title": 0}, "title"),
        ({"title": 1.5}, "title"),
        ({"title": True}, "title"),
        ({"title": "ok", "body": 0}, "body"),
    ],
    ids=["int-title", "float-title", "bool-title", "int-body"],
)
def test_a_number_for_a_post_text_field_is_400(api_client, payload, field):
    response = api_client.post("/news/posts/", payload)

    assert response.status_code == 400
    assert response.json() == {field: ["Not a valid string."]}
    assert not Post.objects.exists()


@pytest.mark.parametrize("field", ["name", "email", "body"])
def test_a_number_for_a_comment_text_field_is_400(api_client, make_post, field):
    payload = {"post_id": make_post().pk, "name": "Ann", "email": "ann@example.com", field: 7}

    response = api_client.post("/news/comments/", payload)

    assert response.status_code == 400
    assert response.json() == {field: ["Not a valid string."]}


# --- Canonical ids -------------------------------------------------------------------------------

NON_CANONICAL_IDS = ["%D9%A1", "%EF%BC%91", "+1", "%201", "01", "1%20", "0"]
NON_CANONICAL_IDS_NAMES = ["arabic", "fullwidth", "plus", "space", "zero-padded", "trailing", "0"]


@pytest.fixture
def post_1(user):
    """Post id 1, owned by `user`, with one comment (id 1)."""
    post = Post.objects.create(pk=1, created_by=user, user_id=1, title="One")
    Comment.objects.create(pk=1, post=post, created_by=user, name="A", email="a@example.com")
    return post


@pytest.mark.parametrize("pk", NON_CANONICAL_IDS, ids=NON_CANONICAL_IDS_NAMES)
@pytest.mark.parametrize("collection", ["posts", "comments"])
def test_only_a_canonical_id_names_an_item(api_client, post_1, collection, pk):
    url = f"/news/{collection}/{pk}/"

    assert api_client.get(url).status_code == 404
    assert api_client.patch(url, {"title": "x", "name": "x"}).status_code == 404
    response = api_client.delete(url)

    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}
    assert Post.objects.filter(pk=1).exists() and Comment.objects.filter(pk=1).exists()
    assert api_client.get(f"/news/{collection}/1/").status_code == 200


@pytest.mark.parametrize("pk", NON_CANONICAL_IDS, ids=NON_CANONICAL_IDS_NAMES)
def test_only_a_canonical_post_id_names_the_comments_of_a_post(api_client, post_1, pk):
    url = f"/news/posts/{pk}/comments/"

    assert api_client.get(url).status_code == 404
    response = api_client.post(url, {"name": "Ann", "email": "ann@example.com"})

    assert response.status_code == 404
    assert Comment.objects.count() == 1


@pytest.mark.django_db(transaction=True)  # DRF marks the test's own transaction for rollback
@pytest.mark.parametrize("method", ["get", "post"])
@pytest.mark.parametrize("pk", [2**63, 2**70, 10**40])
def test_a_post_id_beyond_any_row_names_no_comments_of_a_post(api_client, post_1, pk, method):
    url = f"/news/posts/{pk}/comments/"

    response = getattr(api_client, method)(url, {"name": "Ann", "email": "ann@example.com"})

    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}
    assert Comment.objects.count() == 1


# --- Missing trailing slash ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "url", "canonical"),
    [
        ("post", "/news/posts", "/news/posts/"),
        ("post", "/news/comments", "/news/comments/"),
        ("put", "/news/posts/1", "/news/posts/1/"),
        ("patch", "/news/comments/1", "/news/comments/1/"),
        ("delete", "/news/posts/1", "/news/posts/1/"),
        ("post", "/news/posts/1/comments", "/news/posts/1/comments/"),
        ("post", "/api/token", "/api/token/"),
    ],
)
def test_a_write_without_the_trailing_slash_is_a_json_404_naming_the_url_not_a_redirect(
    api_client, post_1, method, url, canonical
):
    response = getattr(api_client, method)(url, {"title": "x", "name": "x", "email": "x@ex.com"})

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert canonical in response.json()["detail"]
    assert (Post.objects.count(), Comment.objects.count()) == (1, 1)
    assert Post.objects.get().title == "One"


def test_a_read_without_the_trailing_slash_still_redirects(anon_client):
    response = anon_client.get("/news/posts")

    assert response.status_code == 301
    assert response["Location"] == "/news/posts/"


# --- Body size -----------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["/news/posts/", "/api/token/"])
def test_a_body_over_the_limit_is_413_naming_the_limit(api_client, url):
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    body = '{"title": "' + "x" * limit + '"}'

    response = api_client.post(url, data=body, content_type="application/json")

    assert response.status_code == 413
    assert response["Content-Type"] == "application/json"
    assert f"{limit} bytes" in response.json()["detail"]


# --- CSRF ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_a_write_to_health_is_a_json_405_even_with_csrf_checks(method):
    response = getattr(Client(enforce_csrf_checks=True), method)("/health/")

    assert response.status_code == 405
    assert response["Content-Type"] == "application/json"
    assert response["Allow"] == "GET, HEAD"


def test_a_csrf_failure_is_a_json_403():
    response = Client(enforce_csrf_checks=True).post(
        "/admin/login/", {"username": "x", "password": "y"}
    )

    assert response.status_code == 403
    assert response["Content-Type"] == "application/json"
    assert "CSRF" in response.json()["detail"]
