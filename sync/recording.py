"""Writing change events: the one place that appends to the change log."""

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from django.db import connections, models, transaction
from django.utils import timezone

from sync.batching import chunked
from sync.models import EventType, ModelEvent

_recording_enabled: ContextVar[bool] = ContextVar("sync_recording_enabled", default=True)


def is_recording() -> bool:
    return _recording_enabled.get()


@contextmanager
def recording_disabled() -> Iterator[None]:
    """Switch change recording off for this thread or task only (used by the initial import).

    A ContextVar, not a global: a new thread starts with recording on, and an asyncio task sees
    the value it was created with, so concurrent requests keep logging.
    """
    token = _recording_enabled.set(False)
    try:
        yield
    finally:
        _recording_enabled.reset(token)


def record_events(
    model: type[models.Model], pks: Iterable[int], event_type: EventType, *, using: str
) -> None:
    """Append one event per primary key, in order, on the connection that made the change."""
    if not is_recording():
        return
    table = model._meta.db_table
    pks = list(pks)
    if len(pks) == 1:
        _insert_event(table, pks[0], event_type, using=using)
    elif pks:
        events = [ModelEvent(entity_table=table, entity_pk=pk, type=event_type) for pk in pks]
        ModelEvent.objects.using(using).bulk_create(events)


def record_event(instance: models.Model, event_type: EventType, *, using: str) -> None:
    record_events(type(instance), [instance.pk], event_type, using=using)


def _insert_event(table: str, pk: int, event_type: EventType, *, using: str) -> None:
    """One plain INSERT for the one event of a save() or delete().

    This runs on every API write, so it skips the ORM's per-object machinery (a bulk_create of
    one row costs about twice as much) and asks for no id back.
    """
    connection = connections[using]
    quote = connection.ops.quote_name
    opts = ModelEvent._meta
    columns = ", ".join(
        quote(opts.get_field(name).column)
        for name in ("entity_table", "entity_pk", "type", "logged_at")
    )
    logged_at = connection.ops.adapt_datetimefield_value(timezone.now())
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {quote(opts.db_table)} ({columns}) VALUES (%s, %s, %s, %s)",
            [table, pk, str(event_type), logged_at],
        )


class ChangeLoggedQuerySet(models.QuerySet):
    """A QuerySet whose bulk writes leave one event per affected row, in the same transaction.

    `save()` and `delete()` (including `QuerySet.delete()` and cascades) are covered by the
    signal receivers; these overrides close the paths that send no signals. `bulk_update()`
    needs no override: Django runs each of its batches through `update()` below.
    """

    def update(self, **kwargs) -> int:
        query = self.query
        if not is_recording() or query.is_sliced or query.distinct_fields or query.combinator:
            # Off, or a query Django refuses to update: let Django do (or refuse) it.
            return super().update(**kwargs)
        if kwargs.keys() <= getattr(self.model, "change_log_ignored_fields", frozenset()):
            # Only local bookkeeping changes (e.g. created_by set to NULL when its user is
            # deleted): nothing the target holds, so nothing to log.
            return super().update(**kwargs)
        connection = connections[self.db]
        rows = self.model._default_manager.db_manager(self.db)
        with transaction.atomic(using=self.db, savepoint=False):
            # Lock the matching rows and update exactly those, so the events name the rows the
            # UPDATE touched and not a row inserted meanwhile. The subquery keeps joins, DISTINCT
            # and repeated rows (a filter across comments) out of the locking query.
            pks = list(
                rows.filter(pk__in=self.values("pk"))
                .select_for_update()
                .order_by("pk")
                .values_list("pk", flat=True)
            )
            if not pks:
                return 0
            count = 0
            for batch in chunked(pks, connection.ops.bulk_batch_size(["pk"], pks)):
                count += models.QuerySet.update(rows.filter(pk__in=batch), **kwargs)
            record_events(self.model, pks, EventType.UPDATED, using=self.db)
        return count

    update.alters_data = True

    def bulk_create(
        self,
        objs,
        batch_size=None,
        ignore_conflicts=False,
        update_conflicts=False,
        update_fields=None,
        unique_fields=None,
    ):
        options = {
            "batch_size": batch_size,
            "ignore_conflicts": ignore_conflicts,
            "update_conflicts": update_conflicts,
            "update_fields": update_fields,
            "unique_fields": unique_fields,
        }
        if not is_recording():
            return super().bulk_create(objs, **options)
        if ignore_conflicts or update_conflicts:
            raise TypeError(
                f"{self.model.__name__}.objects.bulk_create() with ignore_conflicts or "
                "update_conflicts cannot say which rows it wrote, so it cannot be change-logged; "
                "create the rows one by one or inside recording_disabled()"
            )
        with transaction.atomic(using=self.db, savepoint=False):
            created = super().bulk_create(objs, **options)
            record_events(self.model, [obj.pk for obj in created], EventType.CREATED, using=self.db)
        return created

    bulk_create.alters_data = True
