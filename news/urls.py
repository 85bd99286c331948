from django.urls import path
from rest_framework.routers import DefaultRouter

from news.views import CommentViewSet, PostCommentViewSet, PostViewSet

app_name = "news"

router = DefaultRouter()
router.register("posts", PostViewSet, basename="post")
router.register("comments", CommentViewSet, basename="comment")

post_comments = PostCommentViewSet.as_view({"get": "list", "post": "create"})

urlpatterns = [
    path("posts/<int:post_pk>/comments/", post_comments, name="post-comments"),
    *router.urls,
]
