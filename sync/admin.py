from datetime import timedelta

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.template.response import TemplateResponse
from django.utils import timezone

from sync.changelog import ParkedFilter, discard_parked, retry_parked
from sync.models import EntitySyncState, ModelEvent, SyncDecision, SyncRun, SyncTarget
from sync.planner import EntityKey
from sync.target import KINDS, MODELS

AGES = {"1h": timedelta(hours=1), "1d": timedelta(days=1), "7d": timedelta(days=7)}


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


class StatusFilter(admin.SimpleListFilter):
    """The HTTP status of the last failure, as sync_status --failing groups them."""

    title = "last status"
    parameter_name = "last_status"

    def lookups(self, request, model_admin):
        statuses = (
            EntitySyncState.objects.exclude(last_error="")
            .order_by("last_status")
            .values_list("last_status", flat=True)
            .distinct()
        )
        return [(str(s) if s else "none", str(s) if s else "no answer") for s in statuses]

    def queryset(self, request, queryset):
        if self.value() == "none":
            return queryset.exclude(last_error="").filter(last_status__isnull=True)
        if self.value():
            return queryset.filter(last_status=self.value())
        return queryset


class ParkedAgeFilter(admin.SimpleListFilter):
    title = "parked longer ago than"
    parameter_name = "parked_before"

    def lookups(self, request, model_admin):
        return [(name, name) for name in AGES]

    def queryset(self, request, queryset):
        if self.value() in AGES:
            return queryset.filter(parked_at__lt=timezone.now() - AGES[self.value()])
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
        "last_status",
        "last_error",
    ]
    list_filter = [EntityTableFilter, FailureFilter, StatusFilter, ParkedAgeFilter]
    search_fields = ["=entity_pk", "=remote_key"]
    ordering = ["entity_table", "entity_pk"]
    actions = ["retry", "discard"]

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
        retried = retry_parked(entities=keys, actor=request.user.get_username())
        if retried:
            names = ", ".join(str(key) for key in retried[:10])
            more = f" and {len(retried) - 10} more" if len(retried) > 10 else ""
            text = f"Un-parked {len(retried)} entities ({names}{more}): the next run sends them."
            self.message_user(request, text)
        else:
            self.message_user(request, "None of the selected entities is parked.", messages.WARNING)

    @admin.action(
        description="Discard the selected parked entities (the target keeps what it has)",
        permissions=["retry"],
    )
    def discard(self, request, queryset):
        """Asks first, on a page of its own, as Django's delete action does."""
        keys = _keys(queryset.filter(parked_at__isnull=False))
        if not keys:
            self.message_user(request, "None of the selected entities is parked.", messages.WARNING)
            return None
        if request.POST.get("confirmed") != "yes":
            context = {
                **self.admin_site.each_context(request),
                "title": "Discard the pending changes of these parked entities?",
                "entities": keys,
                "selected": request.POST.getlist(helpers.ACTION_CHECKBOX_NAME),
                "opts": self.model._meta,
            }
            return TemplateResponse(request, "admin/sync/discard_confirmation.html", context)
        discarded = discard_parked(
            filters=ParkedFilter(entities=tuple(keys)), actor=request.user.get_username()
        )
        self.message_user(
            request,
            f"Discarded {len(discarded)} entities: the target keeps what it has for them; their "
            "next change is sent.",
        )
        return None

    def has_retry_permission(self, request) -> bool:
        """Un-parking or discarding changes what the sync does: it needs the right to change
        sync states."""
        return request.user.has_perm("sync.change_entitysyncstate")


def _keys(queryset) -> list[EntityKey]:
    return [
        EntityKey(KINDS[table], pk)
        for table, pk in queryset.values_list("entity_table", "entity_pk")
        if table in KINDS
    ]


@admin.register(SyncDecision)
class SyncDecisionAdmin(ReadOnlyAdmin):
    list_display = ["decided_at", "action", "actor", "count", "filters"]
    list_filter = ["action"]
    ordering = ["-decided_at", "-id"]


@admin.register(SyncTarget)
class SyncTargetAdmin(ReadOnlyAdmin):
    list_display = ["url", "adopted_at", "rewrites"]
