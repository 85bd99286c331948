"""Receivers that turn every change news announces into a change event.

Deletes are logged on pre_delete rather than post_delete: Django's deletion collector sends
pre_delete inside its transaction with the rows in id order, children (comments) before their
parent, but sends post_delete in reverse id order. A failed DELETE rolls the event back with it,
so the log still holds only deletions that committed.
"""

from django.db.models.signals import post_save, pre_delete

from news.signals import rows_created, rows_updated
from sync.planner import EventType
from sync.recording import is_recording, record_events
from sync.target import MODELS


def on_saved(sender, instance, created, using, **kwargs) -> None:
    if is_recording():
        record_events(sender, [instance.pk], _saved(created), using=using)


def on_deleting(sender, instance, using, **kwargs) -> None:
    if is_recording():
        record_events(sender, [instance.pk], EventType.DELETED, using=using)


def on_rows_created(sender, pks, using, **kwargs) -> None:
    if not is_recording():
        return
    if pks is None:
        raise TypeError(
            f"{sender.__name__}.objects.bulk_create() with ignore_conflicts or update_conflicts "
            "cannot say which rows it wrote, so it cannot be change-logged; create the rows one "
            "by one or inside recording_disabled()"
        )
    record_events(sender, pks, EventType.CREATED, using=using)


def on_rows_updated(sender, pks, using, **kwargs) -> None:
    if is_recording():
        record_events(sender, pks, EventType.UPDATED, using=using)


def _saved(created: bool) -> EventType:
    return EventType.CREATED if created else EventType.UPDATED


def connect_receivers() -> None:
    """Connect the receivers once per tracked model."""
    for model in MODELS.values():
        label = model._meta.label_lower
        post_save.connect(on_saved, sender=model, dispatch_uid=f"sync.saved.{label}")
        pre_delete.connect(on_deleting, sender=model, dispatch_uid=f"sync.deleted.{label}")
        rows_created.connect(on_rows_created, sender=model, dispatch_uid=f"sync.rows+.{label}")
        rows_updated.connect(on_rows_updated, sender=model, dispatch_uid=f"sync.rows~.{label}")
