from django.core.paginator import Paginator
from django.utils.functional import cached_property
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import PageNumberPagination

from news.counts import counted_rows


class CountedPaginator(Paginator):
    """Django's paginator, with the row count of a whole table read from its counts (news.counts)
    rather than counted: a page costs the same at a thousand rows and at a million."""

    @cached_property
    def count(self) -> int:
        rows = counted_rows(self.object_list)
        return super().count if rows is None else rows


class NewsPagination(PageNumberPagination):
    django_paginator_class = CountedPaginator
    page_size_query_param = "page_size"
    page_size_query_description = "Number of results per page (at most 100; more gives 100)."
    max_page_size = 100

    def get_page_size(self, request) -> int:
        """A whole number from 1 up is 400 otherwise; DRF alone silently uses the default."""
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        if not (raw.isascii() and raw.isdigit()) or int(raw) < 1:
            raise ValidationError({self.page_size_query_param: ["A whole number, 1 or more."]})
        return min(int(raw), self.max_page_size)

    def get_page_number(self, request, paginator):
        """A whole number from 1, or `last`; anything else (`0`, `abc`, ``) is 404 Invalid page."""
        page = request.query_params.get(self.page_query_param)
        if page is None or page in self.last_page_strings:
            return page or 1
        if not (page.isascii() and page.isdigit()) or int(page) < 1:
            raise NotFound(self.invalid_page_message.format(page_number=page, message=""))
        return page

    def check_parameters(self, request) -> None:
        """Refuse a bad page or page_size even where they do not apply (`?all=true`)."""
        self.get_page_size(request)
        self.get_page_number(request, None)

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            parameter["schema"]["minimum"] = 1
        return parameters
