"""The change log and the state the synchronisation keeps between runs."""

from django.db import models
from django.db.models import Q
from django.utils import timezone

from sync.planner import EventType


class ModelEventQuerySet(models.QuerySet):
    def pending(self) -> "ModelEventQuerySet":
        return self.filter(synced_at__isnull=True)

    def synced(self) -> "ModelEventQuerySet":
        return self.filter(synced_at__isnull=False)


class ModelEvent(models.Model):
    """One create, update or delete of a tracked row; pending until `synced_at` is set."""

    id = models.BigAutoField(primary_key=True)
    entity_table = models.CharField(max_length=63, help_text="Database table, e.g. news_post.")
    entity_pk = models.BigIntegerField()
    type = models.CharField(
        max_length=7,
        choices=[(event_type.value, event_type.value.lower()) for event_type in EventType],
    )
    logged_at = models.DateTimeField(default=timezone.now)
    synced_at = models.DateTimeField(null=True, blank=True)

    objects = ModelEventQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        indexes = [
            # "Pending events in id order": a partial index holds only the rows not yet synced.
            models.Index(
                fields=["id"],
                condition=Q(synced_at__isnull=True),
                name="sync_event_pending_idx",
            ),
            models.Index(fields=["entity_table", "entity_pk"], name="sync_event_entity_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.entity_table}#{self.entity_pk}"


class EntitySyncState(models.Model):
    """What the target holds for one entity, and how its delivery is going.

    A row with `remote_id` set means the target holds the entity under that id, as
    `delivered_hash` describes. `remote_id` is empty while the entity is not known to be on the
    target; `create_unconfirmed` then says a POST may have landed there without an answer.
    """

    entity_table = models.CharField(max_length=63)
    entity_pk = models.BigIntegerField()
    remote_id = models.BigIntegerField(
        null=True, blank=True, help_text="The entity's id on the target; empty: not known there."
    )
    delivered_hash = models.CharField(
        max_length=32, blank=True, help_text="Hash of the record the target last acknowledged."
    )
    remote_parent_id = models.BigIntegerField(
        null=True, blank=True, help_text="A comment's postId on the target."
    )
    create_unconfirmed = models.BooleanField(
        default=False,
        help_text="A create was sent but never answered: look for it before sending it again.",
    )
    unconfirmed_record = models.JSONField(
        null=True, blank=True, help_text="The record of the unconfirmed create, as sent."
    )
    attempts = models.PositiveIntegerField(
        default=0, help_text="Runs in a row whose call for this entity failed."
    )
    last_error = models.TextField(blank=True)
    last_failed_at = models.DateTimeField(null=True, blank=True)
    parked_at = models.DateTimeField(
        null=True, blank=True, help_text="Given up after SYNC_MAX_ATTEMPTS; a new change retries."
    )
    parked_event_id = models.BigIntegerField(
        null=True, blank=True, help_text="Newest pending event when the entity was parked."
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["entity_table", "entity_pk"], name="sync_state_unique_entity"
            ),
            # One record on the target belongs to at most one entity of a kind.
            models.UniqueConstraint(
                fields=["entity_table", "remote_id"],
                condition=Q(remote_id__isnull=False),
                name="sync_state_unique_remote_id",
            ),
        ]
        verbose_name = "entity sync state"

    def __str__(self) -> str:
        return f"{self.entity_table}#{self.entity_pk}"


class SyncRun(models.Model):
    """One run of sync_changes, kept as history for operators."""

    class Mode(models.TextChoices):
        INCREMENTAL = "incremental", "incremental"
        FULL = "full", "full"

    class Status(models.TextChoices):
        RUNNING = "running", "running"
        SUCCEEDED = "succeeded", "succeeded"
        PARTIAL = "partial", "some entities failed"
        FAILED = "failed", "failed"

    mode = models.CharField(max_length=11, choices=Mode.choices, default=Mode.INCREMENTAL)
    dry_run = models.BooleanField(default=False)
    status = models.CharField(max_length=9, choices=Status.choices, default=Status.RUNNING)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    events_pending = models.PositiveIntegerField(default=0)
    calls_created = models.PositiveIntegerField(default=0)
    calls_updated = models.PositiveIntegerField(default=0)
    calls_deleted = models.PositiveIntegerField(default=0)
    calls_failed_created = models.PositiveIntegerField(
        default=0, help_text="Creates sent that did not deliver (the entity stays pending)."
    )
    calls_failed_updated = models.PositiveIntegerField(default=0)
    calls_failed_deleted = models.PositiveIntegerField(default=0)
    entities_synced = models.PositiveIntegerField(default=0)
    entities_unchanged = models.PositiveIntegerField(
        default=0, help_text="Entities synced without a call: the target already held them."
    )
    entities_failed = models.PositiveIntegerField(default=0)
    error_summary = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]

    def __str__(self) -> str:
        return f"{self.mode} run {self.pk} ({self.status})"
