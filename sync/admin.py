from django.contrib import admin, messages

from sync.changelog import retry_parked
from sync.models import EntitySyncState, ModelEvent, SyncRun
from sync.planner import EntityKey
from sync.target import KINDS, MODELS


class EntityTableFilter(admin.SimpleListFilter):
    """The tracked tables, listed from the models rather than a DISTINCT over the whole log."""

    title = "table"
    parameter_name = "entity_table"

    def lookups(self, request, model_admin):
        return [(model._meta.db_table, model._meta.db_table) for model in MODELS.values()]

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


class ReadOnlyAdmin(admin.ModelAdmin):
    """Written by sync_changes only: operators look, they do not edit."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ModelEvent)
class ModelEventAdmin(ReadOnlyAdmin):
    """The change log, read-only: events are written by the recording and marked by the sync."""

    list_display = ["id", "entity_table", "entity_pk", "type", "logged_at", "synced_at"]
    list_filter = [EntityTableFilter, "type", SyncStateFilter]
    search_fields = ["=entity_pk"]
    ordering = ["-id"]
    show_full_result_count = False


@admin.register(SyncRun)
class SyncRunAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "started_at",
        "finished_at",
        "mode",
        "status",
        "entities_synced",
        "entities_failed",
        "calls_created",
        "calls_updated",
        "calls_deleted",
    ]
    list_filter = ["mode", "status"]
    ordering = ["-started_at", "-id"]


class FailureFilter(admin.SimpleListFilter):
    title = "delivery"
    parameter_name = "delivery"

    def lookups(self, request, model_admin):
        return [("failing", "failing"), ("parked", "parked")]

    def queryset(self, request, queryset):
        if self.value() == "failing":
            return queryset.exclude(last_error="")
        if self.value() == "parked":
            return queryset.filter(parked_at__isnull=False)
        return queryset


@admin.register(EntitySyncState)
class EntitySyncStateAdmin(ReadOnlyAdmin):
    list_display = [
        "entity_table",
        "entity_pk",
        "remote_id",
        "attempts",
        "parked_at",
        "last_failed_at",
        "last_error",
    ]
    list_filter = [EntityTableFilter, FailureFilter]
    search_fields = ["=entity_pk", "=remote_key"]
    ordering = ["entity_table", "entity_pk"]
    actions = ["retry"]

    @admin.action(
        description="Retry the selected parked entities (after fixing the cause)",
        permissions=["retry"],
    )
    def retry(self, request, queryset) -> None:
        keys = [
            EntityKey(KINDS[table], pk)
            for table, pk in queryset.values_list("entity_table", "entity_pk")
            if table in KINDS
        ]
        retried = retry_parked(entities=keys)
        if retried:
            names = ", ".join(str(key) for key in retried[:10])
            more = f" and {len(retried) - 10} more" if len(retried) > 10 else ""
            text = f"Un-parked {len(retried)} entities ({names}{more}): the next run sends them."
            self.message_user(request, text)
        else:
            self.message_user(request, "None of the selected entities is parked.", messages.WARNING)

    def has_retry_permission(self, request) -> bool:
        """Un-parking changes what the sync does: it needs the right to change sync states."""
        return request.user.has_perm("sync.change_entitysyncstate")
