from rest_framework.pagination import PageNumberPagination


class NewsPagination(PageNumberPagination):
    page_size_query_param = "page_size"
    page_size_query_description = "Number of results per page (at most 100)."
    max_page_size = 100
