import re

import django_filters
from django import forms

from news.models import Comment, Post


class WholeNumberField(forms.IntegerField):
    """Left out, no filter; sent, a whole number in ASCII digits. Django alone takes `?user_id=`
    as left out, and `0.0` or `\u0661` as numbers."""

    def clean(self, value):
        if value is not None and not re.fullmatch(r"-?[0-9]+", value):
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid")
        return super().clean(value)


class IntegerFilter(django_filters.NumberFilter):
    """A whole-number filter: `1.5` or an empty value is a 400, not silently 1 or no filter."""

    field_class = WholeNumberField


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
