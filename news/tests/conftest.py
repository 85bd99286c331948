"""Fixtures for the API tests."""

import json

import pytest


@pytest.fixture
def streamed_json():
    """Decode a streamed JSON response, after checking it really was streamed."""

    def decode(response):
        assert response.streaming, "expected a StreamingHttpResponse"
        assert response["Content-Type"] == "application/json"
        return json.loads(b"".join(response.streaming_content))

    return decode
