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
    assert schemas["PostRequest"]["properties"]["user_id"]["readOnly"] is True  # taken, ignored
    assert schemas["CommentRequest"]["properties"]["post_id"]["readOnly"] is True
    assert set(schemas["NewCommentRequest"]["required"]) == {"post_id", "name", "email"}
    assert schemas["Post"]["properties"]["title"]["maxLength"] == 256


def test_schema_passes_validation_without_warnings(tmp_path):
    schema_file = tmp_path / "schema.yml"

    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(schema_file))

    assert schema_file.read_text().startswith("openapi: 3.")


@pytest.mark.parametrize(("path", "query"), [
    ("/api/schema/", "?format=xml"),
    ("/api/schema/", "?format=html"),
    ("/api/docs/", "?format=json"),
    ("/news/posts/", "?format=xml"),
    ("/news/posts/", "?format=api"),
])  # fmt: skip
def test_a_format_an_endpoint_does_not_have_is_a_406_in_json_naming_it(anon_client, path, query):
    """As every error of the API: JSON, whatever format was asked for."""
    response = anon_client.get(f"{path}{query}")

    assert response.status_code == 406
    assert response["Content-Type"] == "application/json"
    assert response.json()["detail"].startswith(f"{query[1:]} is not a format of this endpoint")


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("delete", "/api/schema/", 405),
        ("post", "/api/schema/", 405),
        ("post", "/api/docs/", 405),
        ("put", "/api/docs/", 405),
    ],
)
def test_a_method_the_docs_do_not_have_is_a_405_in_json(anon_client, method, path, status):
    response = getattr(anon_client, method)(path)

    assert response.status_code == status
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": f'Method "{method.upper()}" not allowed.'}


@pytest.mark.parametrize("path", ["/api/docs/", "/api/schema/"])
def test_options_of_the_docs_is_answered_in_json(anon_client, path):
    response = anon_client.options(path)

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert "GET" in response["Allow"]


def test_the_docs_asked_for_in_a_format_they_do_not_have_is_a_406_in_json(anon_client):
    response = anon_client.get("/api/docs/", HTTP_ACCEPT="application/xml")

    assert response.status_code == 406
    assert response["Content-Type"] == "application/json"
    assert "detail" in response.json()


def test_swagger_ui_loads_its_assets_from_this_server(anon_client):
    response = anon_client.get("/api/docs/")

    assert response.status_code == 200
    html = response.content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert any(asset.endswith("swagger-ui-bundle.js") for asset in assets)
    assert all(asset.startswith("/static/drf_spectacular_sidecar/") for asset in assets), assets
    # No asset from a CDN (a random token of the page may hold the letters "cdn").
    assert not re.search(r"//[^\"']*cdn", html.lower())
    assert 'url: "/api/schema/"' in html
    for asset in assets:
        assert anon_client.get(asset).status_code == 200, asset


def schema_of(client) -> dict:
    return client.get("/api/schema/", {"format": "json"}).json()


@pytest.mark.parametrize(
    ("path", "item"),
    [
        ("/news/posts/", "Post"),
        ("/news/comments/", "Comment"),
        ("/news/posts/{post_pk}/comments/", "Comment"),
    ],
)
def test_a_list_answers_a_page_or_with_all_true_an_array(anon_client, path, item):
    schema = schema_of(anon_client)["paths"][path]["get"]["responses"]["200"]

    one_of = schema["content"]["application/json"]["schema"]["oneOf"]

    assert one_of[0] == {"$ref": f"#/components/schemas/Paginated{item}List"}
    assert one_of[1] == {"type": "array", "items": {"$ref": f"#/components/schemas/{item}"}}


EXPECTED_ERRORS = {
    # 503 on a list: too many ?all=true streams; on a write: Redis cannot be told of it.
    ("/news/posts/", "get"): {"400", "401", "404", "503"},
    ("/news/posts/", "post"): {"400", "401", "413", "415", "503"},
    ("/news/posts/{id}/", "get"): {"401", "404"},
    # 412: If-Match with an ETag the item no longer has.
    ("/news/posts/{id}/", "put"): {"400", "401", "403", "404", "412", "413", "415", "503"},
    ("/news/posts/{id}/", "delete"): {"401", "403", "404", "412", "503"},
    ("/news/posts/{post_pk}/comments/", "post"): {"400", "401", "404", "413", "415", "503"},
    ("/api/token/", "post"): {"400", "401", "413", "415", "429"},
    ("/api/token/refresh/", "post"): {"400", "401", "413", "415"},
}


@pytest.mark.parametrize(("path", "method"), list(EXPECTED_ERRORS))
def test_each_operation_documents_its_error_answers_as_json(anon_client, path, method):
    schema = schema_of(anon_client)
    responses = schema["paths"][path][method]["responses"]

    errors = {code for code in responses if code >= "400"}

    assert errors == EXPECTED_ERRORS[(path, method)]
    for code in errors:
        content = responses[code]["content"]["application/json"]["schema"]
        assert content, code
    assert responses["401"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Error"
    }
    assert schema["components"]["schemas"]["Error"]["required"] == ["detail"]


def test_throttled_login_documents_retry_after(anon_client):
    responses = schema_of(anon_client)["paths"]["/api/token/"]["post"]["responses"]

    assert "Retry-After" in responses["429"]["headers"]


def test_text_fields_document_what_the_api_refuses(anon_client):
    schemas = schema_of(anon_client)["components"]["schemas"]
    title = schemas["PostRequest"]["properties"]["title"]

    assert title["type"] == "string"
    assert re.fullmatch(title["pattern"], "Hello")
    assert not re.fullmatch(title["pattern"], "   ")
    assert not re.fullmatch(title["pattern"], "a\x00b")


# --- What generated clients rely on --------------------------------------------------------------

BIGINT = 2**63 - 1


@pytest.mark.parametrize("path", ["/api/token/verify/", "/api/token/blacklist/"])
def test_token_verify_and_blacklist_document_the_empty_object_they_answer(anon_client, path):
    response = schema_of(anon_client)["paths"][path]["post"]["responses"]["200"]

    empty = response["content"]["application/json"]["schema"]
    assert (empty["type"], empty["properties"], empty["additionalProperties"]) == (
        "object",
        {},
        False,
    )


def test_the_error_body_declares_the_messages_of_a_refused_token(anon_client, user):
    schemas = schema_of(anon_client)["components"]["schemas"]
    anon_client.credentials(HTTP_AUTHORIZATION="Bearer not-a-token")
    refused = anon_client.get("/news/posts/").json()

    assert set(refused) <= set(schemas["Error"]["properties"])
    messages = schemas["Error"]["properties"]["messages"]
    assert messages["type"] == "array"
    assert messages["items"] == {"$ref": "#/components/schemas/TokenMessage"}
    assert set(schemas["TokenMessage"]["properties"]) == set(refused["messages"][0])


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/news/posts/{id}/", "id"),
        ("/news/comments/{id}/", "id"),
        ("/news/posts/{post_pk}/comments/", "post_pk"),
    ],
)
def test_path_ids_are_integers_from_1(anon_client, path, name):
    for method, operation in schema_of(anon_client)["paths"][path].items():
        (parameter,) = [p for p in operation["parameters"] if p["in"] == "path"]
        assert parameter["name"] == name
        assert parameter["schema"] == {"type": "integer", "minimum": 1, "maximum": BIGINT}, method


def test_a_new_comments_post_id_documents_its_range_and_that_it_must_exist(anon_client):
    post_id = schema_of(anon_client)["components"]["schemas"]["NewCommentRequest"]["properties"][
        "post_id"
    ]

    assert (post_id["type"], post_id["minimum"], post_id["maximum"]) == ("integer", 1, BIGINT)
    assert "400" in post_id["description"]


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
@pytest.mark.parametrize("path", ["/news/posts/{id}/", "/news/comments/{id}/"])
def test_writes_to_an_item_document_if_match_and_its_412(anon_client, path, method):
    operation = schema_of(anon_client)["paths"][path][method]

    (if_match,) = [p for p in operation["parameters"] if p["in"] == "header"]
    assert (if_match["name"], if_match.get("required", False)) == ("If-Match", False)
    assert operation["responses"]["412"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Error"
    }


@pytest.mark.parametrize(
    "path", ["/news/posts/", "/news/comments/", "/news/posts/{post_pk}/comments/"]
)
def test_a_201_documents_its_location(anon_client, path):
    created = schema_of(anon_client)["paths"][path]["post"]["responses"]["201"]

    assert created["headers"]["Location"]["schema"] == {"type": "string", "format": "uri"}
    assert "ETag" in created["headers"]


def test_reads_document_their_etag_and_cache_control(anon_client):
    answer = schema_of(anon_client)["paths"]["/news/posts/{id}/"]["get"]["responses"]["200"]

    assert {"ETag", "Cache-Control", "Last-Modified"} <= set(answer["headers"])


def test_ordering_lists_the_allowed_values(anon_client):
    parameters = schema_of(anon_client)["paths"]["/news/posts/"]["get"]["parameters"]

    (ordering,) = [p for p in parameters if p["name"] == "ordering"]
    assert ordering["schema"]["enum"] == ["id", "-id"]


@pytest.mark.parametrize(
    ("component", "writable", "read_only"),
    [
        ("PostRequest", {"title", "body"}, {"id", "user_id", "created_at", "updated_at"}),
        ("PatchedPostRequest", {"title", "body"}, {"id", "user_id", "created_at", "updated_at"}),
        (
            "CommentRequest",
            {"name", "email", "body"},
            {"id", "post_id", "created_at", "updated_at"},
        ),
        ("NewCommentRequest", {"post_id", "name", "email", "body"}, {"id", "created_at"}),
    ],
)
def test_an_items_request_body_is_closed_to_fields_it_does_not_have(
    anon_client, component, writable, read_only
):
    """As the API answers: a field the item does not have is a 400; its read-only ones are
    taken and ignored."""
    schema = schema_of(anon_client)["components"]["schemas"][component]

    assert schema["additionalProperties"] is False
    properties = schema["properties"]
    assert writable <= set(properties)
    assert all(properties[name].get("readOnly") for name in read_only)
