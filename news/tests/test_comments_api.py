"""The comment endpoints: /news/comments/, /news/comments/{id}/ and /news/posts/{id}/comments/."""

import pytest

from news.models import Comment
from sync.models import ModelEvent

pytestmark = pytest.mark.django_db

COMMENTS = "/news/comments/"
COMMENT_FIELDS = {"id", "post_id", "name", "email", "body", "created_at", "updated_at"}
VALID = {"name": "Ann", "email": "ann@example.com", "body": "Nice post"}


def comment_url(comment_or_pk) -> str:
    return f"{COMMENTS}{getattr(comment_or_pk, 'pk', comment_or_pk)}/"


def post_comments_url(post_or_pk) -> str:
    return f"/news/posts/{getattr(post_or_pk, 'pk', post_or_pk)}/comments/"


def create_comments(post, count: int) -> list[Comment]:
    return Comment.objects.bulk_create(
        Comment(post=post, name=f"Name {i}", email=f"c{i}@example.com") for i in range(count)
    )


def get_fully(client, url, params):
    response = client.get(url, params)
    assert response.status_code == 200
    if response.streaming:
        b"".join(response.streaming_content)


# --- Reading /news/comments/ ---------------------------------------------------------------------


def test_list_is_public_and_paginated(anon_client, make_comment):
    comment = make_comment(name="Ann", email="ann@example.com")

    response = anon_client.get(COMMENTS)

    assert response.status_code == 200
    body = response.json()
    assert (body["count"], body["next"], body["previous"]) == (1, None, None)
    [item] = body["results"]
    assert set(item) == COMMENT_FIELDS
    assert (item["id"], item["post_id"], item["name"], item["email"]) == (
        comment.pk,
        comment.post_id,
        "Ann",
        "ann@example.com",
    )


def test_page_and_page_size(anon_client, make_post):
    ids = [c.pk for c in create_comments(make_post(), 5)]

    body = anon_client.get(COMMENTS, {"page_size": 2, "page": 2}).json()

    assert body["count"] == 5
    assert [item["id"] for item in body["results"]] == ids[2:4]
    assert body["next"] is not None and body["previous"] is not None


def test_page_size_is_capped_at_100(anon_client, make_post):
    create_comments(make_post(), 101)

    body = anon_client.get(COMMENTS, {"page_size": 500}).json()

    assert len(body["results"]) == 100


def test_filter_by_post_id(anon_client, make_post):
    create_comments(make_post(), 2)
    wanted = create_comments(make_post(), 3)

    body = anon_client.get(COMMENTS, {"post_id": wanted[0].post_id}).json()

    assert [item["id"] for item in body["results"]] == [c.pk for c in wanted]


@pytest.mark.parametrize("value", ["abc", "1.5", "", "1.0", "\u0661"])
def test_filter_by_post_id_needs_a_whole_number(anon_client, value):
    response = anon_client.get(COMMENTS, {"post_id": value})

    assert response.status_code == 400
    assert "post_id" in response.json()


@pytest.mark.parametrize(("ordering", "reverse"), [("id", False), ("-id", True)])
def test_ordering_by_id(anon_client, make_post, ordering, reverse):
    ids = [c.pk for c in create_comments(make_post(), 4)]

    body = anon_client.get(COMMENTS, {"ordering": ordering}).json()

    assert [item["id"] for item in body["results"]] == sorted(ids, reverse=reverse)


def test_all_true_streams_every_comment(anon_client, make_post, streamed_json):
    ids = [c.pk for c in create_comments(make_post(), 30)]

    body = streamed_json(anon_client.get(COMMENTS, {"all": "true"}))

    assert [item["id"] for item in body] == ids
    assert set(body[0]) == COMMENT_FIELDS


def test_all_true_applies_post_id_and_ordering(anon_client, make_post, streamed_json):
    create_comments(make_post(), 2)
    wanted = create_comments(make_post(), 3)

    response = anon_client.get(
        COMMENTS, {"all": "true", "post_id": wanted[0].post_id, "ordering": "-id"}
    )

    assert [item["id"] for item in streamed_json(response)] == [c.pk for c in reversed(wanted)]


def test_all_true_with_no_comments_is_an_empty_array(anon_client, streamed_json):
    assert streamed_json(anon_client.get(COMMENTS, {"all": "true"})) == []


def test_all_with_an_invalid_value_is_400(anon_client):
    response = anon_client.get(COMMENTS, {"all": "nope"})

    assert response.status_code == 400
    assert "all" in response.json()


def test_get_one_comment(anon_client, make_comment):
    comment = make_comment()

    response = anon_client.get(comment_url(comment))

    assert response.status_code == 200
    assert response.json()["id"] == comment.pk
    assert response.json()["post_id"] == comment.post_id


@pytest.mark.parametrize("pk", ["999999", "abc"])
def test_unknown_comment_is_404(anon_client, pk):
    response = anon_client.get(comment_url(pk))

    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}


# The user, the request's savepoint and its release, then a count and a page, or the one stream;
# under a post, one more to load the post.
@pytest.mark.parametrize(("params", "most", "nested_most"), [({}, 5, 6), ({"all": "true"}, 4, 5)])
@pytest.mark.parametrize("page_size", [1, 100])
def test_listing_comments_costs_the_same_queries_whatever_the_page_size(
    api_client, make_post, django_assert_max_num_queries, params, most, nested_most, page_size
):
    post = make_post()
    create_comments(post, 120)

    with django_assert_max_num_queries(most):
        get_fully(api_client, COMMENTS, {**params, "page_size": page_size})
    with django_assert_max_num_queries(nested_most):
        get_fully(api_client, post_comments_url(post), {**params, "page_size": page_size})


# --- The comments of one post --------------------------------------------------------------------


def test_comments_of_a_post_lists_only_that_posts_comments(anon_client, make_post):
    post = make_post()
    create_comments(make_post(), 2)
    wanted = create_comments(post, 3)

    response = anon_client.get(post_comments_url(post))

    assert response.status_code == 200
    assert response.json()["count"] == 3
    assert [item["id"] for item in response.json()["results"]] == [c.pk for c in wanted]


def test_comments_of_a_post_paginate_and_order(anon_client, make_post):
    post = make_post()
    ids = [c.pk for c in create_comments(post, 5)]

    body = anon_client.get(post_comments_url(post), {"page_size": 2, "ordering": "-id"}).json()

    assert body["count"] == 5
    assert [item["id"] for item in body["results"]] == ids[::-1][:2]
    assert body["next"] is not None


def test_comments_of_a_post_with_all_true(anon_client, make_post, streamed_json):
    post = make_post()
    create_comments(make_post(), 2)
    wanted = create_comments(post, 25)

    response = anon_client.get(post_comments_url(post), {"all": "true"})

    assert [item["id"] for item in streamed_json(response)] == [c.pk for c in wanted]


def test_comments_of_a_post_without_comments_with_all_true(anon_client, make_post, streamed_json):
    response = anon_client.get(post_comments_url(make_post()), {"all": "true"})

    assert streamed_json(response) == []


@pytest.mark.parametrize("params", [{}, {"all": "true"}])
def test_comments_of_an_unknown_post_is_404(anon_client, params):
    response = anon_client.get(post_comments_url(999999), params)

    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}


# --- Creating ------------------------------------------------------------------------------------


def test_add_a_comment_to_a_post(api_client, user, make_post):
    post = make_post()

    response = api_client.post(post_comments_url(post), VALID)

    assert response.status_code == 201
    body = response.json()
    assert set(body) == COMMENT_FIELDS
    assert (body["post_id"], body["name"], body["email"], body["body"]) == (
        post.pk,
        "Ann",
        "ann@example.com",
        "Nice post",
    )
    comment = Comment.objects.get()
    assert (comment.post, comment.created_by) == (post, user)


def test_under_a_post_the_post_comes_from_the_url(api_client, make_post):
    post, elsewhere = make_post(), make_post()

    response = api_client.post(post_comments_url(post), {**VALID, "post_id": elsewhere.pk})

    assert response.status_code == 201
    assert response.json()["post_id"] == post.pk
    assert Comment.objects.get().post == post


def test_adding_a_comment_to_an_unknown_post_is_404(api_client):
    response = api_client.post(post_comments_url(999999), VALID)

    assert response.status_code == 404
    assert "detail" in response.json()
    assert not Comment.objects.exists()


def test_adding_an_invalid_comment_to_an_unknown_post_is_404(api_client):
    response = api_client.post(post_comments_url(999999), {})

    assert response.status_code == 404


def test_adding_a_comment_without_token_is_401(anon_client, make_post):
    response = anon_client.post(post_comments_url(make_post()), VALID)

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'
    assert not Comment.objects.exists()


def test_create_a_comment_with_post_id(api_client, user, make_post):
    post = make_post()

    response = api_client.post(COMMENTS, {**VALID, "post_id": post.pk})

    assert response.status_code == 201
    assert response.json()["post_id"] == post.pk
    assert set(response.json()) == COMMENT_FIELDS
    comment = Comment.objects.get()
    assert (comment.post, comment.created_by) == (post, user)


@pytest.mark.parametrize("post_id", [999999, "abc", None])
def test_create_a_comment_for_an_unknown_post_is_400(api_client, post_id):
    response = api_client.post(COMMENTS, {**VALID, "post_id": post_id})

    assert response.status_code == 400
    assert list(response.json()) == ["post_id"]
    assert not Comment.objects.exists()


def test_create_a_comment_without_post_id_is_400(api_client):
    response = api_client.post(COMMENTS, VALID)

    assert response.status_code == 400
    assert list(response.json()) == ["post_id"]


def test_create_a_comment_without_token_is_401(anon_client, make_post):
    response = anon_client.post(COMMENTS, {**VALID, "post_id": make_post().pk})

    assert response.status_code == 401
    assert not Comment.objects.exists()


# --- Validation ----------------------------------------------------------------------------------

INVALID = [
    ({"email": "ann@example.com"}, "name"),
    ({"name": "", "email": "ann@example.com"}, "name"),
    ({"name": "x" * 129, "email": "ann@example.com"}, "name"),
    ({"name": "Ann"}, "email"),
    ({"name": "Ann", "email": ""}, "email"),
    ({"name": "Ann", "email": "not-an-email"}, "email"),
    ({"name": "Ann", "email": "ann@"}, "email"),
    ({"name": "Ann", "email": "a" * 117 + "@example.com"}, "email"),  # 129 characters
    ({"name": "Ann", "email": "ann@example.com", "body": "x" * 1025}, "body"),
]
INVALID_IDS = [
    "name-missing",
    "name-empty",
    "name-129",
    "email-missing",
    "email-empty",
    "email-no-at",
    "email-no-domain",
    "email-129",
    "body-1025",
]


@pytest.mark.parametrize(("payload", "field"), INVALID, ids=INVALID_IDS)
def test_invalid_comment_under_a_post_is_400_and_writes_nothing(
    api_client, make_post, payload, field
):
    post = make_post()
    events_before = ModelEvent.objects.count()

    response = api_client.post(post_comments_url(post), payload)

    assert response.status_code == 400
    assert list(response.json()) == [field]
    assert not Comment.objects.exists()
    assert ModelEvent.objects.count() == events_before


@pytest.mark.parametrize(("payload", "field"), INVALID, ids=INVALID_IDS)
def test_invalid_comment_with_post_id_is_400_and_writes_nothing(
    api_client, make_post, payload, field
):
    post = make_post()
    events_before = ModelEvent.objects.count()

    response = api_client.post(COMMENTS, {**payload, "post_id": post.pk})

    assert response.status_code == 400
    assert list(response.json()) == [field]
    assert not Comment.objects.exists()
    assert ModelEvent.objects.count() == events_before


def test_longest_allowed_fields_are_accepted(api_client, make_post):
    email = "a" * 116 + "@example.com"  # 128 characters
    payload = {"name": "n" * 128, "email": email, "body": "b" * 1024}

    response = api_client.post(post_comments_url(make_post()), payload)

    assert response.status_code == 201
    comment = Comment.objects.get()
    assert (len(comment.name), comment.email, len(comment.body)) == (128, email, 1024)


# --- Updating and deleting -----------------------------------------------------------------------


def test_put_replaces_the_comment(api_client, user, make_comment):
    comment = make_comment(created_by=user)

    response = api_client.put(
        comment_url(comment), {"name": "Bo", "email": "bo@example.com", "body": "New"}
    )

    assert response.status_code == 200
    comment.refresh_from_db()
    assert (comment.name, comment.email, comment.body) == ("Bo", "bo@example.com", "New")


def test_put_is_a_full_update(api_client, user, make_comment):
    comment = make_comment(created_by=user, name="Old", email="old@example.com")

    without_email = api_client.put(comment_url(comment), {"name": "New"})
    without_body = api_client.put(comment_url(comment), {"name": "New", "email": "n@example.com"})

    assert without_email.status_code == 400
    assert list(without_email.json()) == ["email"]
    assert without_body.status_code == 200
    comment.refresh_from_db()
    assert (comment.name, comment.email, comment.body) == ("New", "n@example.com", "")


def test_patch_changes_only_the_fields_sent(api_client, user, make_comment):
    comment = make_comment(created_by=user, name="Old", email="old@example.com")

    response = api_client.patch(comment_url(comment), {"name": "New"})

    assert response.status_code == 200
    comment.refresh_from_db()
    assert (comment.name, comment.email, comment.body) == ("New", "old@example.com", "A comment")


@pytest.mark.parametrize("method", ["put", "patch"])
def test_post_id_is_read_only_after_creation(api_client, user, make_post, make_comment, method):
    comment = make_comment(created_by=user)
    elsewhere = make_post()

    response = getattr(api_client, method)(comment_url(comment), {**VALID, "post_id": elsewhere.pk})

    assert response.status_code == 200
    assert response.json()["post_id"] == comment.post_id
    comment.refresh_from_db()
    assert comment.post_id != elsewhere.pk


@pytest.mark.parametrize("method", ["put", "patch"])
def test_invalid_update_is_400_and_changes_nothing(api_client, user, make_comment, method):
    comment = make_comment(created_by=user, email="old@example.com")
    events_before = ModelEvent.objects.count()

    response = getattr(api_client, method)(
        comment_url(comment), {"name": "Ann", "email": "not-an-email"}
    )

    assert response.status_code == 400
    assert list(response.json()) == ["email"]
    comment.refresh_from_db()
    assert comment.email == "old@example.com"
    assert ModelEvent.objects.count() == events_before


def test_delete_a_comment(api_client, user, make_comment):
    comment = make_comment(created_by=user)

    response = api_client.delete(comment_url(comment))

    assert response.status_code == 204
    assert not Comment.objects.exists()


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_writing_an_unknown_comment_is_404(api_client, method):
    response = getattr(api_client, method)(comment_url(999999), VALID)

    assert response.status_code == 404


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_comments_of_a_post_accept_only_get_and_post(api_client, make_post, method):
    response = getattr(api_client, method)(post_comments_url(make_post()), VALID)

    assert response.status_code == 405
    assert "detail" in response.json()


# --- Who may change a comment --------------------------------------------------------------------

WRITES = [("put", 200), ("patch", 200), ("delete", 204)]


@pytest.mark.parametrize(("method", "status"), WRITES)
def test_owner_may_change_their_comment(api_client, user, make_comment, method, status):
    comment = make_comment(created_by=user)

    assert getattr(api_client, method)(comment_url(comment), VALID).status_code == status


@pytest.mark.parametrize(("method", "status"), WRITES)
def test_staff_may_change_anyones_comment(staff_client, user, make_comment, method, status):
    comment = make_comment(created_by=user)

    assert getattr(staff_client, method)(comment_url(comment), VALID).status_code == status


@pytest.mark.parametrize(("method", "status"), WRITES)
def test_staff_may_change_imported_comments(staff_client, make_comment, method, status):
    comment = make_comment(created_by=None)

    assert getattr(staff_client, method)(comment_url(comment), VALID).status_code == status


def test_comment_owner_need_not_own_the_post(api_client, user, other_user, make_post):
    post = make_post(created_by=other_user)
    comment = Comment.objects.create(post=post, created_by=user, name="Ann", email="a@b.co")

    assert api_client.patch(comment_url(comment), {"name": "New"}).status_code == 200


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_other_user_gets_403_and_the_comment_is_unchanged(other_client, user, make_comment, method):
    comment = make_comment(created_by=user, name="Mine")

    response = getattr(other_client, method)(comment_url(comment), VALID)

    assert response.status_code == 403
    assert "detail" in response.json()
    comment.refresh_from_db()
    assert comment.name == "Mine"


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_imported_comment_is_403_for_a_regular_user(api_client, make_comment, method):
    comment = make_comment(created_by=None, name="Imported")

    response = getattr(api_client, method)(comment_url(comment), VALID)

    assert response.status_code == 403
    comment.refresh_from_db()
    assert comment.name == "Imported"


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_anonymous_write_is_401_with_www_authenticate(anon_client, user, make_comment, method):
    comment = make_comment(created_by=user, name="Mine")

    response = getattr(anon_client, method)(comment_url(comment), VALID)

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'
    comment.refresh_from_db()
    assert comment.name == "Mine"


@pytest.mark.django_db(transaction=True)
def test_options_with_a_token_describes_a_comment(api_client, user):
    from testing.rows import make_comment

    comment = make_comment(created_by=user)

    answer = api_client.options(f"/news/comments/{comment.pk}/")

    assert answer.status_code == 200
    assert "PUT" in answer.json()["actions"]


@pytest.mark.parametrize("method", ["post", "put", "patch"])
def test_a_field_the_api_does_not_know_is_400_naming_it_and_changes_nothing(
    api_client, user, make_comment, method
):
    comment = make_comment(created_by=user)
    before = list(Comment.objects.values())
    events_before = ModelEvent.objects.count()
    url = COMMENTS if method == "post" else comment_url(comment)
    payload = {**VALID, "post_id": comment.post_id, "emial": "ann@example.com"}

    response = getattr(api_client, method)(url, payload)

    assert response.status_code == 400
    fields = "post_id, name, email, body" if method == "post" else "name, email, body"
    assert response.json() == {"emial": [f"Unknown field: a comment's fields are {fields}."]}
    assert list(Comment.objects.values()) == before
    assert ModelEvent.objects.count() == events_before


def test_an_update_that_changes_nothing_leaves_the_comment_and_the_change_log_alone(
    api_client, user, make_comment
):
    comment = make_comment(created_by=user, **VALID)
    before = list(Comment.objects.values())
    events_before = ModelEvent.objects.count()

    response = api_client.put(comment_url(comment), {**VALID, "post_id": comment.post_id})

    assert response.status_code == 200
    assert list(Comment.objects.values()) == before
    assert ModelEvent.objects.count() == events_before
