"""What each route of news/urls.py reads, by the route's name: the read cache stores an answer
under the generations of these models' tables, and a write of any of them ends the answer. A
route added to news/urls.py needs its row here (news/tests/test_routes.py walks the resolver);
the read cache listens to the writes of every model named here."""

from django.db.models import Model

from news.models import Comment, Post

MODELS_READ: dict[str, tuple[type[Model], ...]] = {
    # The API's root lists the resources; it is keyed by every table, as any answer is that the
    # map does not name.
    "api-root": (Post, Comment),
    "post-list": (Post,),
    "post-detail": (Post,),
    "comment-list": (Comment,),
    "comment-detail": (Comment,),
    # A post's comments, and 404 once the post is gone.
    "post-comments": (Post, Comment),
}

CACHED_MODELS: tuple[type[Model], ...] = tuple(
    dict.fromkeys(model for models in MODELS_READ.values() for model in models)
)


def tables_read(route_name: str | None) -> tuple[str, ...]:
    """The tables an answer of this route depends on; every cached table for a route not named."""
    models = MODELS_READ.get(route_name or "", CACHED_MODELS)
    return tuple(model._meta.db_table for model in models)


def cached_tables() -> set[str]:
    """Every table an answer of the read cache may depend on."""
    return {model._meta.db_table for model in CACHED_MODELS}
