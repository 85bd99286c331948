"""Response headers (news_project/headers.py): ETags on HEAD as on GET, Cache-Control on reads,
gzip, and CORS, through the read cache as well."""

import gzip
import json

import pytest
from django.test import Client

from testing.clients import asgi_get, wsgi_get
from testing.rows import make_comment, make_post

pytestmark = pytest.mark.django_db(transaction=True)

READS = ["/news/posts/{post}/", "/news/posts/?page_size=2", "/news/posts/?all=true"]


def many_posts(count: int = 5):
    return [make_post(title=f"Post {n}", body="b" * 200) for n in range(count)]


# --- HEAD ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("url", READS)
@pytest.mark.parametrize("cached", [False, True], ids=["database", "redis"])
def test_head_answers_the_etag_of_get(request, url, cached):
    if cached:
        request.getfixturevalue("read_cache")
    url = url.format(post=many_posts()[0].pk)
    for _ in range(2):
        get = wsgi_get(url)

    head = wsgi_get(url, method="HEAD")

    assert head.status_code == 200  # the server sends no body on a HEAD
    assert head["ETag"] == get["ETag"]
    assert wsgi_get(url, method="HEAD", HTTP_IF_NONE_MATCH=get["ETag"]).status_code == 304


# --- Cache-Control -------------------------------------------------------------------------------


@pytest.mark.parametrize("cached", [False, True], ids=["database", "redis"])
def test_anonymous_reads_are_public_and_revalidated(request, cached):
    if cached:
        request.getfixturevalue("read_cache")
    post = make_post()
    url = f"/news/posts/{post.pk}/"
    for _ in range(2):
        answer = wsgi_get(url)
    not_modified = wsgi_get(url, HTTP_IF_NONE_MATCH=answer["ETag"])

    assert answer["Cache-Control"] == "public, max-age=0, must-revalidate"
    assert not_modified.status_code == 304
    assert not_modified["Cache-Control"] == answer["Cache-Control"]


def test_the_max_age_of_anonymous_reads_is_a_setting(settings):
    settings.NEWS_HTTP_MAX_AGE = 30

    answer = Client().get("/news/posts/")

    assert answer["Cache-Control"] == "public, max-age=30, must-revalidate"


def test_reads_with_a_token_are_private(api_client):
    answer = api_client.get("/news/posts/")

    assert answer["Cache-Control"] == "private, no-cache"


def test_writes_and_other_paths_carry_no_read_cache_control(api_client):
    assert not api_client.post("/news/posts/", {"title": "x"}).has_header("Cache-Control")
    assert not api_client.get("/health/").has_header("Cache-Control")


# --- Compression ---------------------------------------------------------------------------------


@pytest.mark.parametrize("cached", [False, True], ids=["database", "redis"])
def test_a_long_json_answer_is_gzipped_for_a_client_that_accepts_it(request, cached):
    if cached:
        request.getfixturevalue("read_cache")
    post = make_post()
    for _ in range(40):
        make_comment(post, body="a comment of some length " * 8)
    url = "/news/comments/?all=true"

    for _ in range(2):
        plain = wsgi_get(url)
        zipped = wsgi_get(url, HTTP_ACCEPT_ENCODING="gzip, deflate")

    assert "Content-Encoding" not in plain.headers
    assert zipped["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in zipped["Vary"] and "Accept-Encoding" in plain["Vary"]
    assert json.loads(gzip.decompress(zipped.content)) == json.loads(plain.content)
    assert len(zipped.content) * 4 < len(plain.content)
    assert zipped["ETag"] != plain["ETag"]
    if cached:
        assert (plain["X-Cache"], zipped["X-Cache"]) == ("hit", "hit")
    revalidated = wsgi_get(url, HTTP_ACCEPT_ENCODING="gzip", HTTP_IF_NONE_MATCH=zipped["ETag"])
    assert revalidated.status_code == 304


def test_a_short_answer_is_not_gzipped():
    answer = Client().get("/health/", HTTP_ACCEPT_ENCODING="gzip")

    assert "Content-Encoding" not in answer.headers


# --- CORS ----------------------------------------------------------------------------------------

ALLOWED = "https://app.example.com"


@pytest.fixture
def cors(settings):
    settings.CORS_ALLOWED_ORIGINS = [ALLOWED]


def preflight(origin: str, method: str = "PATCH"):
    return Client().options(
        "/news/posts/1/",
        HTTP_ORIGIN=origin,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD=method,
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization, content-type, if-match",
    )


def test_a_preflight_from_an_allowed_origin_is_allowed(cors):
    answer = preflight(ALLOWED)

    assert answer.status_code == 200
    assert answer["Access-Control-Allow-Origin"] == ALLOWED
    assert "PATCH" in answer["Access-Control-Allow-Methods"]
    allowed_headers = answer["Access-Control-Allow-Headers"].split(", ")
    assert {"authorization", "content-type", "if-match"} <= set(allowed_headers)


@pytest.mark.parametrize("origin", ["https://evil.example", "http://app.example.com", "null"])
def test_a_preflight_from_another_origin_is_a_403_that_says_so(cors, origin):
    answer = preflight(origin)

    assert answer.status_code == 403
    assert "Access-Control-Allow-Origin" not in answer.headers
    assert answer.json() == {
        "detail": f"Cross-origin requests from {origin} are not allowed "
        "(DJANGO_CORS_ALLOWED_ORIGINS)."
    }


def test_no_origin_is_allowed_by_default():
    assert preflight(ALLOWED).status_code == 403


@pytest.mark.parametrize("cached", [False, True], ids=["database", "redis"])
def test_a_read_from_an_allowed_origin_may_be_read_by_its_page(request, cors, cached):
    if cached:
        request.getfixturevalue("read_cache")
    post = make_post()
    url = f"/news/posts/{post.pk}/"
    for _ in range(2):
        allowed = wsgi_get(url, HTTP_ORIGIN=ALLOWED)
        other = wsgi_get(url, HTTP_ORIGIN="https://evil.example")
        plain = wsgi_get(url)

    assert allowed["Access-Control-Allow-Origin"] == ALLOWED
    assert "ETag" in allowed["Access-Control-Expose-Headers"]
    assert "Access-Control-Allow-Origin" not in other.headers
    assert "Access-Control-Allow-Origin" not in plain.headers
    if cached:
        assert {allowed["X-Cache"], other["X-Cache"], plain["X-Cache"]} == {"hit"}


@pytest.mark.parametrize("get", [wsgi_get, asgi_get], ids=["thread", "event-loop"])
@pytest.mark.parametrize("cached", [False, True], ids=["database", "redis"])
def test_a_304_to_an_allowed_origin_may_be_read_by_its_page(request, cors, cached, get):
    # A page that sends If-None-Match itself reads the 304 only if CORS allows it to.
    if cached:
        request.getfixturevalue("read_cache")
    url = f"/news/posts/{make_post().pk}/"
    for _ in range(2):
        etag = get(url, HTTP_ORIGIN=ALLOWED)["ETag"]
        get(url, HTTP_ORIGIN="https://evil.example")

    held = get(url, HTTP_ORIGIN=ALLOWED, HTTP_IF_NONE_MATCH=etag)
    other = get(url, HTTP_ORIGIN="https://evil.example", HTTP_IF_NONE_MATCH=etag)

    assert (held.status_code, held["Access-Control-Allow-Origin"]) == (304, ALLOWED)
    assert "ETag" in held["Access-Control-Expose-Headers"]
    assert (other.status_code, other.get("Access-Control-Allow-Origin")) == (304, None)
    if cached:
        assert (held["X-Cache"], other["X-Cache"]) == ("hit", "hit")
