"""manage.py prune_events: synced events and sync runs past their retention go; pending events and
the last run always stay."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from sync.changelog import prune_events, prune_runs
from sync.models import ModelEvent, SyncRun
from testing.processes import run_manage

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

    assert output.startswith("Deleted 2 synced events logged more than 30 days ago and ")
    remaining = set(ModelEvent.objects.values_list("pk", flat=True))
    assert remaining == {recent_synced.pk, old_pending.pk, recent_pending.pk}
    assert not remaining & {event.pk for event in old_synced}


def test_pending_events_are_never_deleted_even_with_zero_days():
    pending = make_event(age_days=1000, synced=False)
    make_event(age_days=0.01, synced=True)

    output = run("--older-than=0")

    assert output.startswith("Deleted 1 synced event logged more than 0 days ago and ")
    assert list(ModelEvent.objects.values_list("pk", flat=True)) == [pending.pk]


def test_the_age_is_counted_from_logged_at_not_synced_at():
    event = make_event(age_days=40, synced=True)
    ModelEvent.objects.filter(pk=event.pk).update(synced_at=timezone.now())

    assert prune_events(older_than=timedelta(days=30)) == 1
    assert not ModelEvent.objects.exists()


def test_nothing_to_prune_says_zero():
    make_event(age_days=5, synced=True)

    assert run("--older-than", "30", "--runs-older-than", "30") == (
        "Deleted 0 synced events logged more than 30 days ago "
        "and 0 sync runs started more than 30 days ago.\n"
    )
    assert ModelEvent.objects.count() == 1


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("-1", "--older-than must be 0 or more days, got -1"),
        ("abc", "--older-than must be a whole number of days, got 'abc'"),
        ("1.5", "--older-than must be a whole number of days, got '1.5'"),
        ("99999999999", "--older-than must be at most 36500 days, got 99999999999"),
    ],
)
def test_bad_days_fail_with_one_line_and_delete_nothing(value, message):
    make_event(age_days=400, synced=True)

    with pytest.raises(CommandError) as excinfo:
        run("--older-than", value)

    assert str(excinfo.value) == message
    assert ModelEvent.objects.count() == 1


def test_bad_run_days_fail_with_one_line_and_delete_nothing():
    make_run(age_days=400)
    make_run(age_days=0)

    with pytest.raises(CommandError) as excinfo:
        run("--runs-older-than", "a month")

    assert str(excinfo.value) == "--runs-older-than must be a whole number of days, got 'a month'"
    assert SyncRun.objects.count() == 2

    with pytest.raises(CommandError) as excinfo:
        run("--runs-older-than", "100000000")

    assert str(excinfo.value) == "--runs-older-than must be at most 36500 days, got 100000000"
    assert SyncRun.objects.count() == 2


# --- Sync runs -----------------------------------------------------------------------------------


def make_run(*, age_days: float) -> SyncRun:
    started_at = timezone.now() - timedelta(days=age_days)
    return SyncRun.objects.create(
        started_at=started_at,
        finished_at=started_at + timedelta(seconds=2),
        status=SyncRun.Status.SUCCEEDED,
    )


def test_deletes_sync_runs_started_before_the_retention():
    old = [make_run(age_days=age) for age in (45, 31)]
    recent = [make_run(age_days=age) for age in (29, 0.01)]

    output = run("--runs-older-than", "30")

    assert output.endswith("and 2 sync runs started more than 30 days ago.\n")
    assert set(SyncRun.objects.values_list("pk", flat=True)) == {run.pk for run in recent}
    assert not SyncRun.objects.filter(pk__in=[run.pk for run in old]).exists()


def test_the_last_run_is_kept_however_old():
    runs = [make_run(age_days=age) for age in (90, 60)]

    assert prune_runs(older_than=timedelta(days=30)) == 1
    assert list(SyncRun.objects.values_list("pk", flat=True)) == [runs[1].pk]


def test_without_arguments_the_retention_settings_apply(settings):
    settings.SYNC_EVENT_RETENTION_DAYS = 7
    settings.SYNC_RUN_RETENTION_DAYS = 2
    make_event(age_days=8, synced=True, pk=1)
    kept_event = make_event(age_days=6, synced=True, pk=2)
    make_run(age_days=3)
    kept_run = make_run(age_days=1)

    output = run()

    assert output == (
        "Deleted 1 synced event logged more than 7 days ago "
        "and 1 sync run started more than 2 days ago.\n"
    )
    assert list(ModelEvent.objects.values_list("pk", flat=True)) == [kept_event.pk]
    assert list(SyncRun.objects.values_list("pk", flat=True)) == [kept_run.pk]


def test_the_default_retention_is_30_days_for_events_and_runs():
    assert run() == (
        "Deleted 0 synced events logged more than 30 days ago "
        "and 0 sync runs started more than 30 days ago.\n"
    )


# --- Exit codes, as the README says: 0 done, 1 a bad value (one line) ----------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_from_the_command_line_no_argument_exits_0_with_one_line():
    make_run(age_days=90)
    make_run(age_days=1)

    result = run_manage("prune_events")

    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        "Deleted 0 synced events logged more than 30 days ago "
        "and 1 sync run started more than 30 days ago.\n"
    )
    assert result.stderr == ""


def test_from_the_command_line_a_bad_value_exits_2_with_one_line():
    result = run_manage("prune_events", "--older-than", "soon")

    assert result.returncode == 2  # a usage error, as every command's
    assert result.stderr.splitlines() == [
        "CommandError: --older-than must be a whole number of days, got 'soon'"
    ]


def test_the_services_refuse_a_negative_age():
    with pytest.raises(ValueError, match="must not be negative"):
        prune_events(older_than=timedelta(days=-1))
    with pytest.raises(ValueError, match="must not be negative"):
        prune_runs(older_than=timedelta(days=-1))
