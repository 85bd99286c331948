import django_filters
from django import forms

from news.models import Comment, Post


class IntegerFilter(django_filters.NumberFilter):
    """A whole-number filter: `1.5` is a 400, not silently 1."""

    field_class = forms.IntegerField


class PostFilter(django_filters.FilterSet):
    user_id = IntegerFilter(label="Only the posts of this author id on the target.")

    class Meta:
        model = Post
        fields = ["user_id"]


class CommentFilter(django_filters.FilterSet):
    post_id = IntegerFilter(field_name="post__id", label="Only the comments of this post.")

    class Meta:
        model = Comment
        fields = ["post_id"]
