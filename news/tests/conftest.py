"""Fixtures for the API tests."""

import json

import pytest


def body_of(response) -> bytes:
    """A response's body, a stream's (`?all=true` over more rows than a chunk) read to its end."""
    return b"".join(response.streaming_content) if response.streaming else response.content


@pytest.fixture
def streamed_json():
    """Decode an `?all=true` answer: one array, streamed when it is longer than a chunk."""

    def decode(response):
        assert response["Content-Type"] == "application/json"
        return json.loads(body_of(response))

    return decode
