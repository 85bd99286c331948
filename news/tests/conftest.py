"""Fixtures for the API tests: rows created directly in the database."""

import json

import pytest

from news.models import Comment, Post


@pytest.fixture
def make_post(db):
    def make(*, created_by=None, user_id: int = 1, title: str = "A title", body: str = "A body"):
        return Post.objects.create(created_by=created_by, user_id=user_id, title=title, body=body)

    return make


@pytest.fixture
def make_comment(db, make_post):
    def make(post=None, *, created_by=None, name: str = "A name", email: str = "a@example.com"):
        post = post or make_post()
        return Comment.objects.create(
            post=post, created_by=created_by, name=name, email=email, body="A comment"
        )

    return make


@pytest.fixture
def streamed_json():
    """Decode a streamed JSON response, after checking it really was streamed."""

    def decode(response):
        assert response.streaming, "expected a StreamingHttpResponse"
        assert response["Content-Type"] == "application/json"
        return json.loads(b"".join(response.streaming_content))

    return decode
