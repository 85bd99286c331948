import re

import django_filters
from django import forms
from rest_framework.exceptions import ValidationError
from rest_framework.filters import OrderingFilter

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


class StrictOrderingFilter(OrderingFilter):
    """`?ordering=` is one of the orderings the view allows, or a 400 that names them. DRF alone
    drops what it does not know and answers in the default order, as if it had been obeyed."""

    def get_ordering(self, request, queryset, view):
        raw = request.query_params.get(self.ordering_param)
        if raw is None:
            return self.get_default_ordering(view)
        allowed = self.allowed(view)
        if raw not in allowed:
            raise ValidationError({self.ordering_param: [f"Must be one of: {', '.join(allowed)}."]})
        return [raw]

    @staticmethod
    def allowed(view) -> list[str]:
        return [term for field in view.ordering_fields for term in (field, f"-{field}")]

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            parameter["schema"]["enum"] = self.allowed(view)
            parameter["description"] = "The order of the results (default: id)."
        return parameters
