"""Receivers that turn every save and delete of a tracked model into a change event."""

from django.db.models.signals import post_save, pre_delete

from sync.models import EventType
from sync.recording import is_recording, record_event


def tracked_models() -> list[type]:
    from news.models import Comment, Post

    return [Post, Comment]


def on_saved(sender, instance, created, using, **kwargs) -> None:
    if not is_recording():
        return
    record_event(instance, EventType.CREATED if created else EventType.UPDATED, using=using)


def on_deleting(sender, instance, using, **kwargs) -> None:
    if not is_recording():
        return
    record_event(instance, EventType.DELETED, using=using)


def connect_receivers() -> None:
    """Connect the receivers once per tracked model.

    Deletes are logged on pre_delete rather than post_delete: Django's deletion collector sends
    pre_delete inside its transaction with the rows in id order, children (comments) before
    their parent, but sends post_delete in reverse id order. A failed DELETE rolls the event
    back with it, so the log still holds only deletions that committed.
    """
    for model in tracked_models():
        label = model._meta.label_lower
        post_save.connect(on_saved, sender=model, dispatch_uid=f"sync.saved.{label}")
        pre_delete.connect(on_deleting, sender=model, dispatch_uid=f"sync.deleted.{label}")
