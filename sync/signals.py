"""Receivers that turn every save and delete of a tracked model into a change event."""

from django.db.models.signals import post_delete, post_save

from sync.models import EventType
from sync.recording import is_recording, record_event


def tracked_models() -> list[type]:
    from news.models import Comment, Post

    return [Post, Comment]


def on_saved(sender, instance, created, using, **kwargs) -> None:
    if not is_recording():
        return
    record_event(instance, EventType.CREATED if created else EventType.UPDATED, using=using)


def on_deleted(sender, instance, using, **kwargs) -> None:
    if not is_recording():
        return
    record_event(instance, EventType.DELETED, using=using)


def connect_receivers() -> None:
    for model in tracked_models():
        label = model._meta.label_lower
        post_save.connect(on_saved, sender=model, dispatch_uid=f"sync.saved.{label}")
        post_delete.connect(on_deleted, sender=model, dispatch_uid=f"sync.deleted.{label}")
