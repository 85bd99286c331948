from django.contrib import admin

from news.models import Comment, Post
from news.pagination import CountedPaginator


@admin.register(Post)
class PostAdmin(admin.ModelAdmin):
    paginator = CountedPaginator
    list_display = ["id", "title", "user_id", "created_by", "updated_at"]
    list_filter = ["user_id"]
    search_fields = ["title", "body"]
    raw_id_fields = ["created_by"]
    readonly_fields = ["created_at", "updated_at"]


@admin.register(Comment)
class CommentAdmin(admin.ModelAdmin):
    paginator = CountedPaginator
    list_display = ["id", "post", "name", "email", "created_by", "updated_at"]
    search_fields = ["name", "email", "body"]
    raw_id_fields = ["post", "created_by"]
    readonly_fields = ["created_at", "updated_at"]
    list_select_related = ["post", "created_by"]
