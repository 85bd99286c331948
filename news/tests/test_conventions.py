"""What HTTP clients expect of the API's items: Location on a 201, Last-Modified, and If-Match
answered 412 when the item changed since the ETag sent (news/conventions.py)."""

import pytest
from django.utils.http import parse_http_date

from news.models import Comment, Post

pytestmark = pytest.mark.django_db


# --- Location ------------------------------------------------------------------------------------


def test_a_created_post_is_201_with_its_location(api_client):
    response = api_client.post("/news/posts/", {"title": "New"})

    assert response.status_code == 201
    post_id = response.json()["id"]
    assert response["Location"] == f"http://testserver/news/posts/{post_id}/"
    assert api_client.get(response["Location"]).json()["title"] == "New"


@pytest.mark.parametrize("under_the_post", [False, True], ids=["comments", "post-comments"])
def test_a_created_comment_is_201_with_its_location(api_client, make_post, under_the_post):
    post = make_post()
    body = {"name": "Ann", "email": "ann@example.com"}
    if under_the_post:
        response = api_client.post(f"/news/posts/{post.pk}/comments/", body)
    else:
        response = api_client.post("/news/comments/", {**body, "post_id": post.pk})

    assert response.status_code == 201
    comment = Comment.objects.get()
    assert response["Location"] == f"http://testserver/news/comments/{comment.pk}/"


def test_location_says_https_behind_a_tls_proxy(api_client, settings):
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

    response = api_client.post("/news/posts/", {"title": "New"}, HTTP_X_FORWARDED_PROTO="https")

    assert response["Location"].startswith("https://testserver")


# --- Last-Modified -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["posts", "comments"])
def test_an_item_says_when_it_last_changed(anon_client, make_comment, kind):
    comment = make_comment()
    item = comment.post if kind == "posts" else comment

    response = anon_client.get(f"/news/{kind}/{item.pk}/")

    assert parse_http_date(response["Last-Modified"]) == int(item.updated_at.timestamp())


# --- If-Match ------------------------------------------------------------------------------------


def etag_of_get(client, url: str) -> str:
    return client.get(url)["ETag"]


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_a_write_with_the_current_etag_goes_through(api_client, user, make_post, method):
    post = make_post(created_by=user, title="Before")
    url = f"/news/posts/{post.pk}/"

    response = getattr(api_client, method)(
        url, {"title": "After"}, HTTP_IF_MATCH=etag_of_get(api_client, url)
    )

    assert response.status_code in (200, 204)


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_a_write_with_a_stale_etag_is_412_and_changes_nothing(api_client, user, make_post, method):
    post = make_post(created_by=user, title="Before")
    url = f"/news/posts/{post.pk}/"
    stale = etag_of_get(api_client, url)
    assert api_client.patch(url, {"title": "Changed meanwhile"}).status_code == 200

    response = getattr(api_client, method)(url, {"title": "After"}, HTTP_IF_MATCH=stale)

    assert response.status_code == 412
    assert "changed since the ETag" in response.json()["detail"]
    assert Post.objects.get().title == "Changed meanwhile"


def test_if_match_takes_a_weak_etag_a_list_of_them_and_a_star(api_client, user, make_post):
    post = make_post(created_by=user, title="Before")
    url = f"/news/posts/{post.pk}/"
    etag = etag_of_get(api_client, url)

    weak = api_client.patch(url, {"title": "One"}, HTTP_IF_MATCH=f"W/{etag}")
    listed = api_client.patch(url, {"title": "Two"}, HTTP_IF_MATCH=f'"other", {weak["ETag"]}')
    star = api_client.patch(url, {"title": "Three"}, HTTP_IF_MATCH="*")

    assert [weak.status_code, listed.status_code, star.status_code] == [200, 200, 200]


def test_the_etag_of_a_write_answer_is_the_etag_of_the_next_get(api_client, user, make_comment):
    comment = make_comment(created_by=user)
    url = f"/news/comments/{comment.pk}/"

    created = api_client.post("/news/posts/", {"title": "New"})
    edited = api_client.patch(url, {"name": "Changed"})

    assert created["ETag"] == etag_of_get(api_client, created["Location"])
    assert edited["ETag"] == etag_of_get(api_client, url)
    again = api_client.patch(url, {"name": "Again"}, HTTP_IF_MATCH=edited["ETag"])
    assert again.status_code == 200


def test_a_comment_with_a_stale_etag_is_412(api_client, user, make_comment):
    comment = make_comment(created_by=user, name="Before")
    url = f"/news/comments/{comment.pk}/"
    stale = etag_of_get(api_client, url)
    Comment.objects.filter(pk=comment.pk).update(name="Meanwhile")

    response = api_client.put(url, {"name": "After", "email": "a@b.cd"}, HTTP_IF_MATCH=stale)

    assert response.status_code == 412
    assert Comment.objects.get().name == "Meanwhile"


def test_an_invalid_body_is_a_400_whatever_if_match_says(api_client, user, make_post):
    post = make_post(created_by=user, title="Before")

    response = api_client.put(f"/news/posts/{post.pk}/", {}, HTTP_IF_MATCH='"stale"')

    assert response.status_code == 400
    assert list(response.json()) == ["title"]
