"""manage.py prune_events: synced events past the retention go, pending events always stay."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from sync.changelog import prune_events
from sync.models import ModelEvent

pytestmark = pytest.mark.django_db


def make_event(*, age_days: float, synced: bool, pk: int = 1) -> ModelEvent:
    logged_at = timezone.now() - timedelta(days=age_days)
    return ModelEvent.objects.create(
        entity_table="news_post",
        entity_pk=pk,
        type="UPDATED",
        logged_at=logged_at,
        synced_at=logged_at + timedelta(minutes=1) if synced else None,
    )


def run(*args: str) -> str:
    out = StringIO()
    call_command("prune_events", *args, stdout=out)
    return out.getvalue()


def test_deletes_synced_events_older_than_the_given_days_and_says_how_many():
    old_synced = [make_event(age_days=40, synced=True, pk=pk) for pk in (1, 2)]
    recent_synced = make_event(age_days=10, synced=True)
    old_pending = make_event(age_days=400, synced=False)
    recent_pending = make_event(age_days=1, synced=False)

    output = run("--older-than", "30")

    assert output == "Deleted 2 synced events logged more than 30 days ago.\n"
    remaining = set(ModelEvent.objects.values_list("pk", flat=True))
    assert remaining == {recent_synced.pk, old_pending.pk, recent_pending.pk}
    assert not remaining & {event.pk for event in old_synced}


def test_pending_events_are_never_deleted_even_with_zero_days():
    pending = make_event(age_days=1000, synced=False)
    make_event(age_days=0.01, synced=True)

    output = run("--older-than=0")

    assert output == "Deleted 1 synced event logged more than 0 days ago.\n"
    assert list(ModelEvent.objects.values_list("pk", flat=True)) == [pending.pk]


def test_the_age_is_counted_from_logged_at_not_synced_at():
    event = make_event(age_days=40, synced=True)
    ModelEvent.objects.filter(pk=event.pk).update(synced_at=timezone.now())

    assert prune_events(older_than=timedelta(days=30)) == 1
    assert not ModelEvent.objects.exists()


def test_nothing_to_prune_says_zero():
    make_event(age_days=5, synced=True)

    assert run("--older-than", "30") == "Deleted 0 synced events logged more than 30 days ago.\n"
    assert ModelEvent.objects.count() == 1


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("-1", "--older-than must be 0 or more days, got -1"),
        ("abc", "--older-than must be a whole number of days, got 'abc'"),
        ("1.5", "--older-than must be a whole number of days, got '1.5'"),
    ],
)
def test_bad_days_fail_with_one_line_and_delete_nothing(value, message):
    make_event(age_days=400, synced=True)

    with pytest.raises(CommandError) as excinfo:
        run("--older-than", value)

    assert str(excinfo.value) == message
    assert ModelEvent.objects.count() == 1


def test_older_than_is_required():
    with pytest.raises(CommandError, match="--older-than"):
        run()


def test_the_service_refuses_a_negative_age():
    with pytest.raises(ValueError, match="must not be negative"):
        prune_events(older_than=timedelta(days=-1))
