"""Writing change events: the one place that appends to the change log."""

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from django.db import connections, models
from django.utils import timezone

from sync.models import ModelEvent
from sync.planner import EventType

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
