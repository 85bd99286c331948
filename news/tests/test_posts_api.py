"""The post endpoints: /news/posts/ and /news/posts/{id}/."""

import gc
import json
from datetime import UTC, datetime
from urllib.parse import urlencode

import pytest
from django.db import connection
from django.db.models.signals import pre_save

from news.models import Comment, Post
from news.tests.conftest import body_of
from news.views import StreamAllMixin
from sync.models import ModelEvent

pytestmark = pytest.mark.django_db

POSTS = "/news/posts/"
POST_FIELDS = {"id", "user_id", "title", "body", "created_at", "updated_at"}


def post_url(post_or_pk) -> str:
    return f"{POSTS}{getattr(post_or_pk, 'pk', post_or_pk)}/"


def create_posts(count: int, **fields) -> list[Post]:
    fields.setdefault("user_id", 1)
    return Post.objects.bulk_create(Post(title=f"Post {i}", **fields) for i in range(count))


# --- Reading -------------------------------------------------------------------------------------


def test_list_is_public_and_paginated(anon_client, make_post):
    post = make_post(user_id=3, title="Hello", body="World")

    response = anon_client.get(POSTS)

    assert response.status_code == 200
    body = response.json()
    assert (body["count"], body["next"], body["previous"]) == (1, None, None)
    [item] = body["results"]
    assert set(item) == POST_FIELDS
    assert (item["id"], item["user_id"], item["title"], item["body"]) == (
        post.pk,
        3,
        "Hello",
        "World",
    )


def test_default_page_holds_twenty_posts(anon_client):
    create_posts(25)

    body = anon_client.get(POSTS).json()

    assert body["count"] == 25
    assert len(body["results"]) == 20
    assert body["next"].endswith("/news/posts/?page=2")


def test_page_and_page_size_walk_through_every_post(anon_client):
    ids = [post.pk for post in create_posts(5)]

    first = anon_client.get(POSTS, {"page_size": 2}).json()
    last = anon_client.get(POSTS, {"page_size": 2, "page": 3}).json()

    assert first["count"] == 5
    assert [item["id"] for item in first["results"]] == ids[:2]
    assert first["previous"] is None
    assert "page=2" in first["next"] and "page_size=2" in first["next"]
    assert [item["id"] for item in last["results"]] == ids[4:]
    assert last["next"] is None
    assert "page=2" in last["previous"]


def test_page_size_is_capped_at_100(anon_client):
    create_posts(101)

    body = anon_client.get(POSTS, {"page_size": 1000}).json()

    assert body["count"] == 101
    assert len(body["results"]) == 100
    assert body["next"] is not None


def test_page_past_the_end_is_404(anon_client):
    create_posts(3)

    response = anon_client.get(POSTS, {"page": 2})

    assert response.status_code == 404
    assert "detail" in response.json()


@pytest.mark.parametrize(("ordering", "reverse"), [("id", False), ("-id", True)])
def test_ordering_by_id(anon_client, ordering, reverse):
    ids = [post.pk for post in create_posts(4)]

    body = anon_client.get(POSTS, {"ordering": ordering}).json()

    assert [item["id"] for item in body["results"]] == sorted(ids, reverse=reverse)


@pytest.mark.parametrize("ordering", ["title", "", "-title", "id,title", "id,-id", "ID"])
@pytest.mark.parametrize("all_rows", [False, True], ids=["page", "all"])
def test_ordering_by_anything_but_id_is_400_naming_the_allowed_values(
    anon_client, ordering, all_rows
):
    create_posts(2)
    params = {"ordering": ordering, **({"all": "true"} if all_rows else {})}

    response = anon_client.get(POSTS, params)

    assert response.status_code == 400
    assert response.json() == {"ordering": ["Must be one of: id, -id."]}


def test_unknown_query_parameters_are_ignored(anon_client):
    create_posts(2)

    response = anon_client.get(POSTS, {"sort": "title", "colour": "blue"})

    assert response.status_code == 200
    assert response.json()["count"] == 2


def test_page_last_is_the_last_page(anon_client):
    posts = create_posts(5)

    response = anon_client.get(POSTS, {"page": "last", "page_size": 2})

    assert response.status_code == 200
    body = response.json()
    assert [item["id"] for item in body["results"]] == [posts[4].pk]
    assert body["next"] is None
    assert body["previous"].endswith("page=2&page_size=2")


def test_page_last_of_an_empty_list_is_the_empty_first_page(anon_client):
    response = anon_client.get(POSTS, {"page": "last"})

    assert (response.status_code, response.json()["results"]) == (200, [])


HUGE = "9" * 5000  # more digits than Python turns into an int by default (4,300)


@pytest.mark.parametrize("url", [POSTS, "/news/comments/"])
def test_a_page_number_of_thousands_of_digits_is_404_not_500(anon_client, url, caplog):
    create_posts(1)

    response = anon_client.get(url, {"page": HUGE})

    assert response.status_code == 404
    assert response.json() == {"detail": "Invalid page."}
    assert not [record for record in caplog.records if record.levelname == "ERROR"]


def test_a_page_size_of_thousands_of_digits_is_capped_at_100(anon_client):
    create_posts(3)

    response = anon_client.get(POSTS, {"page_size": HUGE})

    assert response.status_code == 200
    assert response.json()["count"] == 3


def test_a_filter_or_an_id_of_thousands_of_digits_is_no_500(anon_client):
    create_posts(1)

    assert anon_client.get(POSTS, {"user_id": HUGE}).status_code in (200, 400)
    assert anon_client.get("/news/comments/", {"post_id": HUGE}).status_code in (200, 400)
    for url in (post_url(HUGE), f"/news/comments/{HUGE}/", f"{POSTS}{HUGE}/comments/"):
        response = anon_client.get(url)
        assert (response.status_code, response.json()) == (404, {"detail": "Not found."}), url


def test_filter_by_user_id(anon_client):
    create_posts(2, user_id=1)
    wanted = create_posts(3, user_id=2)

    body = anon_client.get(POSTS, {"user_id": 2}).json()

    assert body["count"] == 3
    assert [item["id"] for item in body["results"]] == [post.pk for post in wanted]


@pytest.mark.parametrize("value", ["abc", "1.5", "", "2.0", "\u0661", " 2"])
def test_filter_by_user_id_needs_a_whole_number(anon_client, value):
    response = anon_client.get(POSTS, {"user_id": value})

    assert response.status_code == 400
    assert "user_id" in response.json()


def test_filter_by_user_id_out_of_range_matches_nothing(anon_client):
    create_posts(1)

    response = anon_client.get(POSTS, {"user_id": 2**70})

    assert response.status_code == 200
    assert response.json()["count"] == 0


def test_get_one_post(anon_client, make_post):
    post = make_post(title="One")

    response = anon_client.get(post_url(post))

    assert response.status_code == 200
    assert response.json()["id"] == post.pk
    assert response.json()["title"] == "One"


@pytest.mark.parametrize("pk", ["999999", "abc", str(2**70)])
def test_unknown_post_is_404(anon_client, pk):
    response = anon_client.get(post_url(pk))

    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}


# --- ?all=true -----------------------------------------------------------------------------------


def test_all_true_streams_every_post_as_a_plain_array(anon_client, streamed_json):
    ids = [post.pk for post in create_posts(45)]

    response = anon_client.get(POSTS, {"all": "true"})

    assert response.status_code == 200
    body = streamed_json(response)
    assert isinstance(body, list)
    assert [item["id"] for item in body] == ids
    assert set(body[0]) == POST_FIELDS


@pytest.mark.parametrize("chunk_size", [1000, 2], ids=["one answer", "streamed"])
@pytest.mark.parametrize("url", [POSTS, "/news/comments/", "/news/posts/{post}/comments/"])
def test_all_true_is_byte_for_byte_what_the_pages_serialize(
    anon_client, make_post, make_comment, monkeypatch, url, chunk_size
):
    monkeypatch.setattr(StreamAllMixin, "stream_chunk_size", chunk_size)
    post = make_post(title='Ünïcode "quoted" \\ title\n', body="")
    make_post(title="second", body="\u2028")
    make_post(title="third")
    for n in range(3):
        make_comment(post=post, name=f"c{n} ✓", body="line\nbreak\t\u2028\u2029")
    moment = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    Post.objects.update(created_at=moment)
    Comment.objects.filter(name__startswith="c1").update(updated_at=moment.replace(microsecond=7))
    url = url.format(post=post.pk)

    answer = anon_client.get(url, {"all": "true"})
    assert answer.streaming == (chunk_size == 2)
    streamed = body_of(answer)
    paged = anon_client.get(url, {"page_size": 100})

    assert json.loads(streamed) == paged.json()["results"]
    results = paged.content.split(b'"results":', 1)[1].removesuffix(b"}")
    assert streamed == results


# Outside the test's transaction, as a server runs reads: DRF marks the transaction a refused
# request runs in for rollback.
@pytest.mark.django_db(transaction=True)
def test_streams_over_the_limit_are_refused_until_one_ends(anon_client, settings, monkeypatch):
    settings.NEWS_MAX_STREAMS = 2
    monkeypatch.setattr(StreamAllMixin, "stream_chunk_size", 2)  # three posts: a stream
    create_posts(3)
    first, second = (anon_client.get(POSTS, {"all": "true"}) for _ in range(2))

    refused = anon_client.get(POSTS, {"all": "true"})
    page = anon_client.get(POSTS)
    first.close()  # what the server does once the answer is sent, or the client has left
    del second  # an answer dropped without being closed gives its slot back too
    gc.collect()
    again = [anon_client.get(POSTS, {"all": "true"}) for _ in range(2)]

    assert (refused.status_code, refused["Retry-After"]) == (503, "5")
    assert "Too many ?all=true answers" in refused.json()["detail"]
    assert page.status_code == 200
    assert [len(json.loads(body_of(r))) for r in again] == [3, 3]


def test_all_true_sends_the_rows_in_chunks(anon_client, monkeypatch):
    monkeypatch.setattr(StreamAllMixin, "stream_chunk_size", 2)
    ids = [post.pk for post in create_posts(5)]

    response = anon_client.get(POSTS, {"all": "true"})
    chunks = list(response.streaming_content)

    assert len(chunks) == 4  # three chunks of at most two rows, then the closing bracket
    assert [item["id"] for item in json.loads(b"".join(chunks))] == ids


def test_all_true_on_an_empty_table_is_an_empty_array(anon_client, streamed_json):
    response = anon_client.get(POSTS, {"all": "true"})

    assert response.status_code == 200
    assert streamed_json(response) == []


def test_all_true_applies_filters_and_ordering(anon_client, streamed_json):
    create_posts(3, user_id=1)
    wanted = create_posts(3, user_id=2)

    response = anon_client.get(POSTS, {"all": "true", "user_id": 2, "ordering": "-id"})

    assert [item["id"] for item in streamed_json(response)] == [p.pk for p in reversed(wanted)]


@pytest.mark.parametrize("value", ["false", "False"])
def test_all_false_is_the_usual_page(anon_client, value):
    create_posts(2)

    response = anon_client.get(POSTS, {"all": value})

    assert response.status_code == 200
    assert response.json()["count"] == 2


@pytest.mark.parametrize("value", ["", "0", "1", "yes", "no"])
def test_all_takes_only_true_or_false(anon_client, value):
    response = anon_client.get(POSTS, {"all": value})

    assert response.status_code == 400
    assert response.json() == {"all": ["Must be true or false."]}


@pytest.mark.parametrize("value", ["abc", "0", "-1", "1.5", "", "\u0661"])
def test_page_size_must_be_a_whole_number_from_1(anon_client, value):
    response = anon_client.get(POSTS, {"page_size": value})

    assert response.status_code == 400
    assert response.json() == {"page_size": ["A whole number, 1 or more."]}


def test_all_with_an_invalid_value_is_400(anon_client):
    response = anon_client.get(POSTS, {"all": "maybe"})

    assert response.status_code == 400
    assert "all" in response.json()


def test_invalid_filter_with_all_true_is_400(anon_client):
    response = anon_client.get(POSTS, {"all": "true", "user_id": "abc"})

    assert response.status_code == 400
    assert "user_id" in response.json()


# --- Query counts --------------------------------------------------------------------------------


def get_fully(client, url, params):
    response = client.get(url, params)
    assert response.status_code == 200
    if response.streaming:
        b"".join(response.streaming_content)


# The user, the request's savepoint and its release, then a count and a page, or the one stream.
@pytest.mark.parametrize(("params", "most"), [({}, 5), ({"all": "true"}, 4)])
@pytest.mark.parametrize("page_size", [1, 100])
def test_listing_posts_costs_the_same_queries_whatever_the_page_size(
    api_client, django_assert_max_num_queries, params, most, page_size
):
    create_posts(120)

    with django_assert_max_num_queries(most):
        get_fully(api_client, POSTS, {**params, "page_size": page_size})


# --- Creating ------------------------------------------------------------------------------------


def test_create_post_is_201_with_user_id_from_the_setting(api_client, user, settings):
    settings.NEWS_NEW_POST_USER_ID = 4242

    response = api_client.post(POSTS, {"title": "New", "body": "Text"})

    assert response.status_code == 201
    body = response.json()
    assert set(body) == POST_FIELDS
    assert (body["user_id"], body["title"], body["body"]) == (4242, "New", "Text")
    post = Post.objects.get(pk=body["id"])
    assert (post.user_id, post.created_by, post.title) == (4242, user, "New")


def test_new_posts_default_to_user_id_99999942(api_client):
    response = api_client.post(POSTS, {"title": "New"})

    assert response.json()["user_id"] == 99999942


def test_create_ignores_a_user_id_sent_by_the_client(api_client, settings):
    settings.NEWS_NEW_POST_USER_ID = 7

    response = api_client.post(POSTS, {"title": "New", "user_id": 1})

    assert response.status_code == 201
    assert response.json()["user_id"] == 7
    assert Post.objects.get().user_id == 7


def test_body_is_optional_when_creating(api_client):
    response = api_client.post(POSTS, {"title": "Only a title"})

    assert response.status_code == 201
    assert response.json()["body"] == ""


def test_create_without_token_is_401_and_writes_nothing(anon_client):
    response = anon_client.post(POSTS, {"title": "New"})

    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert not Post.objects.exists()


# --- Validation ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "title"),
        ({"title": ""}, "title"),
        ({"title": "   "}, "title"),
        ({"title": None}, "title"),
        ({"title": "x" * 257}, "title"),
        ({"title": "ok", "body": "x" * 1025}, "body"),
        ({"title": "ok", "body": None}, "body"),
    ],
    ids=["missing", "empty", "blank", "null", "title-257", "body-1025", "body-null"],
)
def test_invalid_post_is_400_naming_the_field_and_writes_nothing(api_client, payload, field):
    response = api_client.post(POSTS, payload)

    assert response.status_code == 400
    assert list(response.json()) == [field]
    assert not Post.objects.exists()
    assert not ModelEvent.objects.exists()


@pytest.mark.parametrize("title", ["\r" + "t" * 256, "t" * 256 + " "])
def test_a_title_longer_than_256_characters_as_sent_is_refused_even_if_trimming_shortens_it(
    api_client, title
):
    # The schema's maxLength applies to the value sent, before surrounding whitespace is trimmed.
    response = api_client.post(POSTS, {"title": title})

    assert response.status_code == 400
    assert response.json() == {"title": ["Ensure this field has no more than 256 characters."]}
    assert not Post.objects.exists()


def test_title_of_256_and_body_of_1024_characters_are_accepted(api_client):
    response = api_client.post(POSTS, {"title": "t" * 256, "body": "b" * 1024})

    assert response.status_code == 201
    post = Post.objects.get()
    assert (len(post.title), len(post.body)) == (256, 1024)


@pytest.mark.parametrize("method", ["put", "patch"])
def test_invalid_update_is_400_and_changes_nothing(api_client, user, make_post, method):
    post = make_post(created_by=user, title="Before")
    events_before = ModelEvent.objects.count()

    response = getattr(api_client, method)(post_url(post), {"title": "x" * 257})

    assert response.status_code == 400
    assert "title" in response.json()
    post.refresh_from_db()
    assert post.title == "Before"
    assert ModelEvent.objects.count() == events_before


@pytest.mark.parametrize("method", ["post", "put", "patch"])
def test_a_field_the_api_does_not_know_is_400_naming_it_and_changes_nothing(
    api_client, user, make_post, method
):
    post = make_post(created_by=user, title="Before")
    before = Post.objects.values().get(pk=post.pk)
    events_before = ModelEvent.objects.count()
    url = POSTS if method == "post" else post_url(post)

    response = getattr(api_client, method)(url, {"titel": "x", "body": "b", "userId": 3})

    assert response.status_code == 400
    assert response.json() == {
        "titel": ["Unknown field: a post's fields are title, body."],
        "userId": ["Unknown field: a post's fields are title, body."],
    }
    assert list(Post.objects.values()) == [before]
    assert ModelEvent.objects.count() == events_before


def test_the_fields_of_an_answer_sent_back_are_taken(api_client, user, make_post):
    # A client that reads an item and PUTs it back whole sends the read-only fields too.
    post = make_post(created_by=user, title="Before")
    item = api_client.get(post_url(post)).json()

    response = api_client.put(post_url(post), {**item, "title": "After"})

    assert response.status_code == 200
    post.refresh_from_db()
    assert post.title == "After"


@pytest.mark.parametrize(
    ("method", "payload"),
    [("patch", {}), ("patch", {"title": "Same"}), ("put", {"title": "Same", "body": "Kept"})],
)
def test_an_update_that_changes_nothing_leaves_the_post_and_the_change_log_alone(
    api_client, user, make_post, method, payload
):
    post = make_post(created_by=user, title="Same", body="Kept")
    before = Post.objects.values().get(pk=post.pk)
    events_before = ModelEvent.objects.count()
    etag = api_client.get(post_url(post))["ETag"]

    response = getattr(api_client, method)(post_url(post), payload)

    assert response.status_code == 200
    assert response.json()["updated_at"] == api_client.get(post_url(post)).json()["updated_at"]
    assert list(Post.objects.values()) == [before]
    assert ModelEvent.objects.count() == events_before
    assert api_client.get(post_url(post))["ETag"] == etag


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/news/posts/{pk}.json"),
        ("get", "/news/posts.json"),
        ("patch", "/news/posts/{pk}.json"),
    ],
)
def test_a_format_suffix_names_nothing(api_client, user, make_post, method, path):
    # Ids and paths are canonical: /news/posts/1/ is the one URL of post 1.
    post = make_post(created_by=user, title="Before")

    response = getattr(api_client, method)(path.format(pk=post.pk), {"title": "After"})

    assert response.status_code == 404
    assert response.json()["detail"].startswith("Not found.")
    post.refresh_from_db()
    assert post.title == "Before"


def test_options_of_an_item_that_does_not_exist_is_404(anon_client, make_post):
    post = make_post()

    assert anon_client.options(post_url(post)).status_code == 200
    missing = anon_client.options(post_url(post.pk + 1000))

    assert missing.status_code == 404
    assert missing.json() == {"detail": "Not found."}


@pytest.mark.parametrize(
    "query", [{"user_id": 5}, {"ordering": "x"}, {"page": "last"}, {"user_id": "abc"}]
)
def test_an_item_is_the_item_whatever_list_parameters_are_sent(api_client, user, make_post, query):
    # The list's filters, ordering and pages choose among items; an item's URL names one.
    post = make_post(created_by=user, user_id=3, title="Itself")

    read = api_client.get(post_url(post), query)
    changed = api_client.patch(post_url(post) + "?" + urlencode(query), {"title": "Changed"})

    assert (read.status_code, read.json()["title"]) == (200, "Itself")
    assert (changed.status_code, changed.json()["title"]) == (200, "Changed")


@pytest.mark.parametrize("coding", ["gzip", "br", "deflate, gzip"])
def test_a_body_in_a_content_coding_is_refused_with_415(api_client, coding):
    body = json.dumps({"title": "coded"})

    response = api_client.post(
        POSTS, body, content_type="application/json", HTTP_CONTENT_ENCODING=coding
    )

    assert response.status_code == 415
    assert "Content-Encoding" in response.json()["detail"]
    assert not Post.objects.exists()


def test_a_body_in_the_identity_coding_is_taken(api_client):
    response = api_client.post(
        POSTS, json.dumps({"title": "plain"}), content_type="application/json",
        HTTP_CONTENT_ENCODING="identity",
    )  # fmt: skip

    assert response.status_code == 201


# --- Updating and deleting -----------------------------------------------------------------------


def test_put_replaces_the_post(api_client, user, make_post):
    post = make_post(created_by=user, user_id=5, title="Old", body="Old body")

    response = api_client.put(post_url(post), {"title": "New", "body": "New body"})

    assert response.status_code == 200
    assert (response.json()["title"], response.json()["body"]) == ("New", "New body")
    post.refresh_from_db()
    assert (post.title, post.body, post.user_id) == ("New", "New body", 5)


def test_put_is_a_full_update(api_client, user, make_post):
    post = make_post(created_by=user, title="Old", body="Old body")

    without_title = api_client.put(post_url(post), {"body": "New body"})
    without_body = api_client.put(post_url(post), {"title": "New"})

    assert without_title.status_code == 400
    assert "title" in without_title.json()
    assert without_body.status_code == 200
    post.refresh_from_db()
    assert (post.title, post.body) == ("New", "")


def test_patch_changes_only_the_fields_sent(api_client, user, make_post):
    post = make_post(created_by=user, title="Old", body="Kept")

    response = api_client.patch(post_url(post), {"title": "New"})

    assert response.status_code == 200
    post.refresh_from_db()
    assert (post.title, post.body) == ("New", "Kept")


def test_user_id_cannot_be_changed(api_client, user, make_post):
    post = make_post(created_by=user, user_id=5)

    response = api_client.patch(post_url(post), {"user_id": 6, "title": "New"})

    assert response.status_code == 200
    assert response.json()["user_id"] == 5
    post.refresh_from_db()
    assert post.user_id == 5


def test_delete_removes_the_post_and_its_comments(api_client, user, make_post, make_comment):
    post = make_post(created_by=user)
    make_comment(post)
    make_comment(post)

    response = api_client.delete(post_url(post))

    assert response.status_code == 204
    assert not Post.objects.filter(pk=post.pk).exists()
    assert not Comment.objects.exists()
    assert api_client.get(post_url(post)).status_code == 404


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_writing_an_unknown_post_is_404(api_client, method):
    response = getattr(api_client, method)(post_url(999999), {"title": "x"})

    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}


# --- Who may change a post -----------------------------------------------------------------------

WRITES = [("put", 200), ("patch", 200), ("delete", 204)]


@pytest.mark.parametrize(("method", "status"), WRITES)
def test_owner_may_change_their_post(api_client, user, make_post, method, status):
    post = make_post(created_by=user)

    response = getattr(api_client, method)(post_url(post), {"title": "Changed"})

    assert response.status_code == status


@pytest.mark.parametrize(("method", "status"), WRITES)
def test_staff_may_change_anyones_post(staff_client, user, make_post, method, status):
    post = make_post(created_by=user)

    response = getattr(staff_client, method)(post_url(post), {"title": "Changed"})

    assert response.status_code == status


@pytest.mark.parametrize(("method", "status"), WRITES)
def test_staff_may_change_imported_posts(staff_client, make_post, method, status):
    post = make_post(created_by=None)

    response = getattr(staff_client, method)(post_url(post), {"title": "Changed"})

    assert response.status_code == status


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_other_user_gets_403_and_the_post_is_unchanged(other_client, user, make_post, method):
    post = make_post(created_by=user, title="Mine")

    response = getattr(other_client, method)(post_url(post), {"title": "Taken"})

    assert response.status_code == 403
    assert "detail" in response.json()
    post.refresh_from_db()
    assert post.title == "Mine"


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_imported_post_is_403_for_a_regular_user(api_client, make_post, method):
    post = make_post(created_by=None, title="Imported")

    response = getattr(api_client, method)(post_url(post), {"title": "Taken"})

    assert response.status_code == 403
    post.refresh_from_db()
    assert post.title == "Imported"


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_anonymous_write_is_401_with_www_authenticate(anon_client, user, make_post, method):
    post = make_post(created_by=user, title="Mine")

    response = getattr(anon_client, method)(post_url(post), {"title": "Taken"})

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'
    assert "detail" in response.json()
    post.refresh_from_db()
    assert post.title == "Mine"


@pytest.mark.parametrize("method", ["put", "patch"])
def test_a_post_deleted_just_before_its_update_is_saved_is_404_and_not_inserted_again(
    api_client, user, make_post, method
):
    post = make_post(created_by=user)

    def delete_it_first(sender, instance, **kwargs):
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM news_post WHERE id = %s", [instance.pk])

    pre_save.connect(delete_it_first, sender=Post, dispatch_uid="test.delete_it_first")
    try:
        response = getattr(api_client, method)(post_url(post), {"title": "Edited"})
    finally:
        pre_save.disconnect(sender=Post, dispatch_uid="test.delete_it_first")

    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}
    assert list(ModelEvent.objects.values_list("type", flat=True)) == ["CREATED"]
    assert Post.objects.get().title == "A title"


# Outside the test's transaction, as a server runs an OPTIONS: DRF checks PUT on the locked row.
@pytest.mark.django_db(transaction=True)
def test_options_with_a_token_describes_a_post_the_user_may_change(api_client, user):
    post = Post.objects.create(created_by=user, user_id=1, title="Mine")

    answer = api_client.options(f"/news/posts/{post.pk}/")

    assert answer.status_code == 200
    assert "PUT" in answer.json()["actions"]
