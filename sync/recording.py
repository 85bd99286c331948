"""Writing change events: the one place that appends to the change log."""

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from django.db import models, transaction

from sync.models import EventType, ModelEvent

_recording_enabled: ContextVar[bool] = ContextVar("sync_recording_enabled", default=True)


def is_recording() -> bool:
    return _recording_enabled.get()


@contextmanager
def recording_disabled() -> Iterator[None]:
    """Switch change recording off for this thread or task only (used by the initial import)."""
    token = _recording_enabled.set(False)
    try:
        yield
    finally:
        _recording_enabled.reset(token)


def record_events(
    model: type[models.Model], pks: Iterable[int], event_type: EventType, *, using: str
) -> None:
    """Append one event per primary key, on the connection that made the change."""
    if not is_recording():
        return
    table = model._meta.db_table
    events = [ModelEvent(entity_table=table, entity_pk=pk, type=event_type) for pk in pks]
    if events:
        ModelEvent.objects.using(using).bulk_create(events)


def record_event(instance: models.Model, event_type: EventType, *, using: str) -> None:
    record_events(type(instance), [instance.pk], event_type, using=using)


class ChangeLoggedQuerySet(models.QuerySet):
    """A QuerySet whose bulk writes leave one event per affected row, in the same transaction.

    `save()` and `delete()` (including `QuerySet.delete()` and cascades) are covered by the
    post_save/post_delete receivers; these overrides close the paths that send no signals.
    """

    def update(self, **kwargs) -> int:
        if not is_recording():
            return super().update(**kwargs)
        with transaction.atomic(using=self.db, savepoint=False):
            # Lock the matching rows so the events name exactly the rows the UPDATE touches.
            pks = list(self.select_for_update().order_by("pk").values_list("pk", flat=True))
            if not pks:
                return 0
            rows = self.model._default_manager.db_manager(self.db).filter(pk__in=pks)
            count = models.QuerySet.update(rows, **kwargs)
            record_events(self.model, pks, EventType.UPDATED, using=self.db)
        return count

    update.alters_data = True

    def bulk_create(self, objs, *args, **kwargs):
        if not is_recording():
            return super().bulk_create(objs, *args, **kwargs)
        if kwargs.get("ignore_conflicts") or kwargs.get("update_conflicts"):
            raise TypeError(
                f"{self.model.__name__}.objects.bulk_create() with ignore_conflicts or "
                "update_conflicts cannot say which rows it wrote, so it cannot be change-logged"
            )
        with transaction.atomic(using=self.db, savepoint=False):
            created = super().bulk_create(objs, *args, **kwargs)
            record_events(self.model, [obj.pk for obj in created], EventType.CREATED, using=self.db)
        return created

    bulk_create.alters_data = True

    def bulk_update(self, objs, fields, *args, **kwargs) -> int:
        if not is_recording():
            return super().bulk_update(objs, fields, *args, **kwargs)
        objs = list(objs)
        with transaction.atomic(using=self.db, savepoint=False):
            count = super().bulk_update(objs, fields, *args, **kwargs)
            record_events(self.model, [obj.pk for obj in objs], EventType.UPDATED, using=self.db)
        return count

    bulk_update.alters_data = True
