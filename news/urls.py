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
router.register("posts", PostViewSet, basename="post")
router.register("comments", CommentViewSet, basename="comment")

post_comments = PostCommentViewSet.as_view({"get": "list", "post": "create"})

urlpatterns = [
    path("posts/<id:post_pk>/comments/", post_comments, name="post-comments"),
    *router.urls,
]
