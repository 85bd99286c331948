import django_filters

from news.models import Comment, Post


class PostFilter(django_filters.FilterSet):
    class Meta:
        model = Post
        fields = ["user_id"]


class CommentFilter(django_filters.FilterSet):
    post_id = django_filters.NumberFilter(field_name="post_id")

    class Meta:
        model = Comment
        fields = ["post_id"]
