"""The change log and the state the synchronisation keeps between runs."""

from __future__ import annotations

from django.db import models, transaction
from django.db.models import Q
from django.utils import timezone

from sync.planner import EventType


class ModelEventQuerySet(models.QuerySet):
    def pending(self) -> ModelEventQuerySet:
        return self.filter(synced_at__isnull=True)

    def synced(self) -> ModelEventQuerySet:
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

    A row with `remote_id` set means the target holds the entity under that id (the target's own
    value, a number or a string; `remote_key` is its text, by which records are told apart), as
    `delivered_hash` describes. `remote_id` is empty while the entity is not known to be on the
    target; `create_unconfirmed` then says a POST may have landed there without an answer.
    """

    entity_table = models.CharField(max_length=63)
    entity_pk = models.BigIntegerField()
    remote_id = models.JSONField(
        null=True, blank=True, help_text="The entity's id on the target, as the target gave it."
    )
    # NULL, not "": the entities that have none stay out of the unique constraint below.
    remote_key = models.CharField(  # noqa: DJ001
        max_length=255,
        null=True,
        blank=True,
        help_text='The remote id\'s text: "5" and 5 are one record. Empty: not known there.',
    )
    delivered_hash = models.CharField(
        max_length=32, blank=True, help_text="Hash of the record last sent and acknowledged."
    )
    acknowledged_hash = models.CharField(
        max_length=32,
        blank=True,
        help_text="Hash of the record as the target said it stored it, when that differs.",
    )
    remote_parent_key = models.CharField(  # noqa: DJ001 - NULL as for remote_key
        max_length=255, null=True, blank=True, help_text="A comment's postId on the target."
    )
    create_unconfirmed = models.BooleanField(
        default=False,
        help_text="A create was sent but never answered: look for it before sending it again.",
    )
    unconfirmed_record = models.JSONField(
        null=True, blank=True, help_text="The record of the unconfirmed create, as sent."
    )
    unconfirmed_run = models.BigIntegerField(
        null=True,
        blank=True,
        help_text="The sync run that sent the unconfirmed create; it may land until that run "
        "has ended and a timeout has passed.",
    )
    attempts = models.PositiveIntegerField(
        default=0, help_text="Runs in a row whose call for this entity failed."
    )
    last_error = models.TextField(blank=True)
    last_status = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="HTTP status of the last failure; empty: no answer."
    )
    error_class = models.CharField(
        max_length=120,
        blank=True,
        help_text="The last error without its URL, ids and numbers: failures alike group by it.",
    )
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
                fields=["entity_table", "remote_key"],
                condition=Q(remote_key__isnull=False),
                name="sync_state_unique_remote_key",
            ),
        ]
        verbose_name = "entity sync state"

    def __str__(self) -> str:
        return f"{self.entity_table}#{self.entity_pk}"


class SyncTarget(models.Model):
    """The target the sync state describes: its ids and mappings mean nothing on another one.

    One row. The import and `sync_changes --full` adopt a target; an incremental run against
    another one is refused, and so is one while a full run that adopted it has not gone through
    (the sync state describes the two targets in part). `rewrites` lists, per kind, the fields
    the target was seen to store otherwise than they were sent (a trimmed or lowercased text).
    """

    url = models.CharField(max_length=2000, help_text="The target's base URL, normalised.")
    adopted_at = models.DateTimeField(default=timezone.now)
    complete = models.BooleanField(
        default=True,
        help_text="False while a full run that adopted it has not gone through: only --full runs.",
    )
    rewrites = models.JSONField(
        default=dict, blank=True, help_text="Fields the target rewrites, by kind."
    )
    keeps_ids = models.BooleanField(
        null=True, blank=True, help_text="Whether it keeps the ids it is sent; empty: not known."
    )
    rate = models.FloatField(
        null=True,
        blank=True,
        help_text="Calls a second the last run settled on (0: as fast as allowed, no slowdown "
        "seen); the next run starts from it.",
    )

    def __str__(self) -> str:
        return self.url

    @classmethod
    def adopt(cls, url: str, *, complete: bool = True) -> SyncTarget:
        """From now on the sync state describes the target at `url`: one row, what is known of
        it new."""
        with transaction.atomic():
            cls.objects.all().delete()
            return cls.objects.create(url=url, complete=complete)


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
        ABANDONED = "abandoned", "abandoned (its process ended without finishing it)"

    mode = models.CharField(max_length=11, choices=Mode.choices, default=Mode.INCREMENTAL)
    target = models.CharField(max_length=2000, blank=True, help_text="The target's base URL.")
    dry_run = models.BooleanField(default=False)
    status = models.CharField(max_length=9, choices=Status.choices, default=Status.RUNNING)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    timeout = models.FloatField(
        null=True,
        blank=True,
        help_text="Seconds each of its calls waited for an answer: a POST it sent may still land "
        "that long after it ended.",
    )
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


class SyncVerification(models.Model):
    """One comparison of the target with the database (`sync_changes --verify`): what differed.

    `counts` is {resource: {"missing": n, "extra": n, "different": n}}; `differences` lists the
    first of them.
    """

    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    target = models.CharField(max_length=2000, help_text="The target's base URL.")
    equal = models.BooleanField(default=False)
    counts = models.JSONField(default=dict, blank=True)
    differences = models.JSONField(default=list, blank=True)
    awaiting = models.PositiveIntegerField(
        default=0, help_text="Differences of entities whose changes wait for the next run."
    )

    class Meta:
        ordering = ["-started_at", "-id"]

    def __str__(self) -> str:
        return f"verification {self.pk} ({'equal' if self.equal else 'differs'})"


class SyncDecision(models.Model):
    """An operator's decision about failing entities, kept in the sync history: who, when, how
    many, with which filters. `retry`: sent again; `discard`: the target keeps what it has."""

    class Action(models.TextChoices):
        RETRY = "retry", "retried"
        DISCARD = "discard", "discarded (the target keeps what it has)"

    action = models.CharField(max_length=7, choices=Action.choices)
    actor = models.CharField(max_length=150, help_text="Who decided: a user name.")
    decided_at = models.DateTimeField(default=timezone.now)
    count = models.PositiveIntegerField(default=0)
    filters = models.JSONField(default=dict, blank=True)
    entities = models.JSONField(
        default=list, blank=True, help_text="The first entities it applied to, as kind:id."
    )

    class Meta:
        ordering = ["-decided_at", "-id"]

    def __str__(self) -> str:
        return f"{self.action} of {self.count} by {self.actor}"
