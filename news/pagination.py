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


# More digits than any page or page size can have; Python refuses to read an int of 4,301 or more.
MOST_DIGITS = 18


def whole_number(raw: str) -> int | None:
    """`raw` as a whole number written in ASCII digits, or None."""
    if not (raw.isascii() and raw.isdigit()):
        return None
    if len(raw.lstrip("0")) > MOST_DIGITS:
        return 10**MOST_DIGITS  # larger than anything that exists
    return int(raw)


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
        size = whole_number(raw)
        if size is None or size < 1:
            raise ValidationError({self.page_size_query_param: ["A whole number, 1 or more."]})
        return min(size, self.max_page_size)

    def get_page_number(self, request, paginator):
        """A whole number from 1, or `last` (the last page, the first when there is none);
        anything else (`0`, `abc`, ``) is 404 Invalid page."""
        page = request.query_params.get(self.page_query_param)
        if page is None:
            return 1
        if page in self.last_page_strings:
            return paginator.num_pages if paginator is not None else 1
        number = whole_number(page)
        if number is None or number < 1:
            raise NotFound(self.invalid_page_message.format(page_number="", message=""))
        return number

    def check_parameters(self, request) -> None:
        """Refuse a bad page or page_size even where they do not apply (`?all=true`)."""
        self.get_page_size(request)
        self.get_page_number(request, None)

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            parameter["schema"]["minimum"] = 1
        return parameters
