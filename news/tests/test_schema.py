"""The OpenAPI schema and the Swagger UI, which must work without a CDN."""

import re

import pytest
from django.core.management import call_command

pytestmark = pytest.mark.django_db

ENDPOINTS = {
    "/news/posts/": {"get", "post"},
    "/news/posts/{id}/": {"get", "put", "patch", "delete"},
    "/news/posts/{post_pk}/comments/": {"get", "post"},
    "/news/comments/": {"get", "post"},
    "/news/comments/{id}/": {"get", "put", "patch", "delete"},
    "/api/token/": {"post"},
    "/api/token/refresh/": {"post"},
    "/api/token/verify/": {"post"},
    "/api/token/blacklist/": {"post"},
}


def test_schema_lists_every_endpoint(anon_client):
    response = anon_client.get("/api/schema/", {"format": "json"})

    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    assert {path: set(ops) for path, ops in schema["paths"].items()} == ENDPOINTS


def test_schema_describes_what_each_endpoint_accepts(anon_client):
    schemas = anon_client.get("/api/schema/", {"format": "json"}).json()["components"]["schemas"]

    assert schemas["PostRequest"]["required"] == ["title"]
    assert "user_id" not in schemas["PostRequest"]["properties"]
    assert "post_id" not in schemas["CommentRequest"]["properties"]
    assert set(schemas["NewCommentRequest"]["required"]) == {"post_id", "name", "email"}
    assert schemas["Post"]["properties"]["title"]["maxLength"] == 256


def test_schema_passes_validation_without_warnings(tmp_path):
    schema_file = tmp_path / "schema.yml"

    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(schema_file))

    assert schema_file.read_text().startswith("openapi: 3.")


def test_swagger_ui_loads_its_assets_from_this_server(anon_client):
    response = anon_client.get("/api/docs/")

    assert response.status_code == 200
    html = response.content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert any(asset.endswith("swagger-ui-bundle.js") for asset in assets)
    assert all(asset.startswith("/static/drf_spectacular_sidecar/") for asset in assets), assets
    assert "cdn" not in html.lower()
    assert 'url: "/api/schema/"' in html
    for asset in assets:
        assert anon_client.get(asset).status_code == 200, asset
