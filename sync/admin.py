from django.contrib import admin

from sync.models import ModelEvent
from sync.signals import tracked_models


class EntityTableFilter(admin.SimpleListFilter):
    """The tracked tables, listed from the models rather than a DISTINCT over the whole log."""

    title = "table"
    parameter_name = "entity_table"

    def lookups(self, request, model_admin):
        return [(model._meta.db_table, model._meta.db_table) for model in tracked_models()]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(entity_table=self.value())
        return queryset


class SyncStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("pending", "pending"), ("synced", "synced")]

    def queryset(self, request, queryset):
        if self.value() == "pending":
            return queryset.pending()
        if self.value() == "synced":
            return queryset.synced()
        return queryset


@admin.register(ModelEvent)
class ModelEventAdmin(admin.ModelAdmin):
    """The change log, read-only: events are written by the recording and marked by the sync."""

    list_display = ["id", "entity_table", "entity_pk", "type", "logged_at", "synced_at"]
    list_filter = [EntityTableFilter, "type", SyncStateFilter]
    search_fields = ["=entity_pk"]
    ordering = ["-id"]
    show_full_result_count = False

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
