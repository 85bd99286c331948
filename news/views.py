from itertools import islice

import orjson
from django.conf import settings
from django.db import transaction
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, permissions, viewsets
from rest_framework.exceptions import ValidationError

from news.conventions import ConventionsMixin
from news.filters import CommentFilter, PostFilter, StrictOrderingFilter
from news.models import Comment, Post, locked_post
from news.permissions import IsOwnerOrStaffOrReadOnly
from news.serializers import CommentSerializer, NewCommentSerializer, PostSerializer
from news.streams import limited_stream

ALL_PARAMETER = OpenApiParameter(
    "all",
    OpenApiTypes.BOOL,
    description=(
        "true: every matching row as a plain JSON array (streamed) instead of a page; "
        "filters and ordering still apply."
    ),
)
POST_PK_PARAMETER = OpenApiParameter(
    "post_pk",
    {"type": "integer", "minimum": 1, "maximum": 2**63 - 1},
    OpenApiParameter.PATH,
    description="The post's id.",
)
LINE_SEPARATOR, PARAGRAPH_SEPARATOR = "\u2028".encode(), "\u2029".encode()
# Only an id written the one way the API writes it names an item: not 01, +1, " 1" or "\u0661".
CANONICAL_ID = "[1-9][0-9]*"


class AtomicWritesMixin:
    """Each write runs in one transaction, as ATOMIC_REQUESTS would run it (DRF rolls it back on
    an error it answers); a GET runs without one, sparing the BEGIN and COMMIT round trips."""

    @classmethod
    def as_view(cls, *args, **kwargs):
        return transaction.non_atomic_requests(super().as_view(*args, **kwargs))

    def dispatch(self, request, *args, **kwargs):
        # Not OPTIONS: DRF's description of a row checks PUT on it, which locks it.
        if request.method in ("GET", "HEAD"):
            return super().dispatch(request, *args, **kwargs)
        with transaction.atomic():
            return super().dispatch(request, *args, **kwargs)


class LockedWritesMixin:
    """PUT, PATCH and DELETE lock the row they change until the request's transaction ends.

    A write that arrives while another deletes the row waits for it, then finds nothing: 404.
    Without the lock, save() would fall back to an INSERT and bring the deleted row back.
    """

    def get_queryset(self):
        queryset = super().get_queryset()
        if self.request.method not in permissions.SAFE_METHODS:
            queryset = queryset.select_for_update()
        return queryset


class StreamAllMixin:
    """`?all=true` answers with every matching row as one JSON array, streamed in chunks."""

    stream_chunk_size = 1000

    def list(self, request, *args, **kwargs):
        if self.wants_all(request):
            self.paginator.check_parameters(request)
            return self.stream_all(self.filter_queryset(self.get_queryset()))
        return super().list(request, *args, **kwargs)

    @staticmethod
    def wants_all(request) -> bool:
        value = request.query_params.get("all")
        if value is None:
            return False
        if value.lower() not in ("true", "false"):
            raise ValidationError({"all": ["Must be true or false."]})
        return value.lower() == "true"

    def stream_all(self, queryset) -> HttpResponse:
        """Every row: one answer when they fit in one chunk, else a stream, which holds one of
        the process's stream slots (news.streams) while its client reads."""
        # The serializer's fields read as plain values and written by orjson: the same JSON as
        # the serializer gives (a test holds them equal), at a quarter of the cost a row.
        fields = self.get_serializer_class().Meta.fields
        chunk_size = self.stream_chunk_size
        # A server-side cursor and one chunk at a time keep memory flat.
        rows = queryset.values(*fields).iterator(chunk_size=chunk_size)
        first = list(islice(rows, chunk_size))
        if len(first) < chunk_size:
            return HttpResponse(b"[" + json_rows(first) + b"]", content_type="application/json")

        def chunks():
            yield b"[" + json_rows(first)
            while chunk := list(islice(rows, chunk_size)):
                yield b"," + json_rows(chunk)
            yield b"]"

        return limited_stream(chunks(), content_type="application/json")


def json_rows(rows: list[dict]) -> bytes:
    """The rows as JSON array items, without the brackets."""
    data = orjson.dumps(rows, option=orjson.OPT_UTC_Z)[1:-1]
    # Escaped as DRF's renderer escapes them, for JavaScript's sake.
    return data.replace(LINE_SEPARATOR, b"\\u2028").replace(PARAGRAPH_SEPARATOR, b"\\u2029")


@extend_schema_view(list=extend_schema(parameters=[ALL_PARAMETER]))
class PostViewSet(
    AtomicWritesMixin, LockedWritesMixin, ConventionsMixin, StreamAllMixin, viewsets.ModelViewSet
):
    """Posts: anyone reads; their creator or staff change them."""

    detail_url_name = "post-detail"
    queryset = Post.objects.all()
    serializer_class = PostSerializer
    lookup_value_regex = CANONICAL_ID
    permission_classes = [permissions.IsAuthenticatedOrReadOnly, IsOwnerOrStaffOrReadOnly]
    filterset_class = PostFilter
    ordering_fields = ["id"]
    ordering = ["id"]

    def perform_create(self, serializer) -> None:
        serializer.save(created_by=self.request.user, user_id=settings.NEWS_NEW_POST_USER_ID)

    def perform_destroy(self, instance: Post) -> None:
        # Lock the comments before collecting them: an edit or delete of one of them already
        # under way finishes first, and one that comes later waits, then finds it gone.
        list(instance.comments.select_for_update().values_list("pk", flat=True))
        super().perform_destroy(instance)  # If-Match, then the delete


@extend_schema_view(
    list=extend_schema(parameters=[ALL_PARAMETER]),
    create=extend_schema(request=NewCommentSerializer, responses={201: CommentSerializer}),
)
class CommentViewSet(
    AtomicWritesMixin, LockedWritesMixin, ConventionsMixin, StreamAllMixin, viewsets.ModelViewSet
):
    """Comments: anyone reads; their creator or staff change them."""

    detail_url_name = "comment-detail"
    queryset = Comment.objects.all()
    serializer_class = CommentSerializer
    lookup_value_regex = CANONICAL_ID
    permission_classes = [permissions.IsAuthenticatedOrReadOnly, IsOwnerOrStaffOrReadOnly]
    filterset_class = CommentFilter
    ordering_fields = ["id"]
    ordering = ["id"]

    def get_serializer_class(self):
        if self.action == "create":
            return NewCommentSerializer
        return CommentSerializer

    def perform_create(self, serializer) -> None:
        # The post is locked already: post_id's validation found it so (PostIdField).
        serializer.save(created_by=self.request.user)


@extend_schema_view(
    list=extend_schema(
        summary="List the comments of a post", parameters=[POST_PK_PARAMETER, ALL_PARAMETER]
    ),
    create=extend_schema(summary="Add a comment to a post", parameters=[POST_PK_PARAMETER]),
)
class PostCommentViewSet(
    AtomicWritesMixin,
    StreamAllMixin,
    mixins.ListModelMixin,
    mixins.CreateModelMixin,
    viewsets.GenericViewSet,
):
    """The comments of one post; the post comes from the URL."""

    def get_success_headers(self, data) -> dict[str, str]:
        """A 201 names the new comment's URL."""
        path = reverse("news:comment-detail", args=[data["id"]])
        return {"Location": self.request.build_absolute_uri(path)}

    serializer_class = CommentSerializer
    permission_classes = [permissions.IsAuthenticatedOrReadOnly]
    filter_backends = [StrictOrderingFilter]
    ordering_fields = ["id"]
    ordering = ["id"]

    def initial(self, request, *args, **kwargs) -> None:
        super().initial(request, *args, **kwargs)
        self.get_post()  # an unknown post is a 404 whatever the body says

    def get_post(self) -> Post:
        if not hasattr(self, "_post"):
            if self.request.method == "POST":
                self._post = locked_post(self.kwargs["post_pk"])
                if self._post is None:
                    raise Http404
            else:
                self._post = get_object_or_404(Post, pk=self.kwargs["post_pk"])
        return self._post

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Comment.objects.none()
        return Comment.objects.filter(post=self.get_post())

    def perform_create(self, serializer) -> None:
        serializer.save(created_by=self.request.user, post=self.get_post())
