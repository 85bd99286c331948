from django.urls import path, register_converter
from rest_framework.routers import DefaultRouter

from news.views import CANONICAL_ID, CommentViewSet, PostCommentViewSet, PostViewSet

app_name = "news"


class CanonicalIdConverter:
    """A post id in a URL, written as the API writes it: 1, never 01."""

    regex = CANONICAL_ID
    to_python = int
    to_url = str


register_converter(CanonicalIdConverter, "id")

router = DefaultRouter()
router.include_format_suffixes = False  # /news/posts/1/ is post 1's one URL, not also 1.json
router.register("posts", PostViewSet, basename="post")
router.register("comments", CommentViewSet, basename="comment")

post_comments = PostCommentViewSet.as_view({"get": "list", "post": "create"})

urlpatterns = [
    path("posts/<id:post_pk>/comments/", post_comments, name="post-comments"),
    *router.urls,
]
