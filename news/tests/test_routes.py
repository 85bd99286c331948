"""news/routes.py: every route under /news/ maps to the tables its answers read, so that the read
cache ends an answer when any of them is written."""

import re

import pytest
from django.apps import apps
from django.urls import URLPattern, URLResolver, get_resolver

from news.cache.reads import tables_read
from news.routes import CACHED_MODELS, MODELS_READ


def news_routes(patterns=None, prefix: str = "") -> list[tuple[str, URLPattern]]:
    """(path pattern, route) of every route under /news/, walked from the root URLconf."""
    found = []
    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            found += news_routes(pattern.url_patterns, route)
        elif route.startswith("news/"):
            found.append((route, pattern))
    return found


def models_named(route: str, pattern: URLPattern) -> set[type]:
    """The model a route's view renders, and those its URL names (post_pk: a post)."""
    view = pattern.callback.cls
    named = {
        apps.get_model("news", kwarg.removesuffix("_pk"))
        for kwarg in re.findall(r"(\w+_pk)\b", route)
    }
    serializer = getattr(view, "serializer_class", None)
    return named | ({serializer.Meta.model} if serializer else set())


ROUTES = news_routes()


def test_the_walk_finds_every_route_of_news_urls():
    assert {pattern.name for _, pattern in ROUTES} == {
        "api-root",
        "post-list",
        "post-detail",
        "comment-list",
        "comment-detail",
        "post-comments",
    }


@pytest.mark.parametrize(("route", "pattern"), ROUTES, ids=[route for route, _ in ROUTES])
def test_every_news_route_has_its_row_naming_the_models_it_reads(route, pattern):
    assert pattern.name in MODELS_READ, f"{route} ({pattern.name}) has no row in news/routes.py"
    assert models_named(route, pattern) <= set(MODELS_READ[pattern.name])


def test_every_row_names_a_route():
    assert set(MODELS_READ) == {pattern.name for _, pattern in ROUTES}


def test_the_cache_listens_to_the_writes_of_every_model_read():
    read = {model for models in MODELS_READ.values() for model in models}

    assert set(CACHED_MODELS) == read


@pytest.mark.parametrize(
    ("path", "tables"),
    [
        ("/news/", {"news_post", "news_comment"}),
        ("/news/posts/", {"news_post"}),
        ("/news/posts/7/", {"news_post"}),
        ("/news/posts/7/comments/", {"news_post", "news_comment"}),
        ("/news/comments/", {"news_comment"}),
        ("/news/comments/7/", {"news_comment"}),
        # No route: every table (such a path is answered 404 or redirected, never stored).
        ("/news/elsewhere/", {"news_post", "news_comment"}),
        ("/news/posts.json", {"news_post", "news_comment"}),  # format suffixes name nothing
    ],
)
def test_an_answer_is_keyed_by_the_tables_of_its_route(path, tables):
    assert set(tables_read(path)) == tables
