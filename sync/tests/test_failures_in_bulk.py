"""Failing entities handled in bulk: grouped by kind and error, retried or discarded by filters,
from the command line and the admin; each decision kept in the sync history."""

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from sync.errors import error_class
from sync.models import EntitySyncState, ModelEvent, SyncDecision

pytestmark = pytest.mark.django_db


def failing(table: str, pk: int, *, status: int | None, error: str, parked_hours: float | None):
    now = timezone.now()
    event = ModelEvent.objects.create(entity_table=table, entity_pk=pk, type="UPDATED")
    return EntitySyncState.objects.create(
        parked_event_id=event.pk if parked_hours is not None else None,
        entity_table=table,
        entity_pk=pk,
        remote_id=pk,
        remote_key=str(pk),
        attempts=5 if parked_hours is not None else 1,
        last_error=error,
        last_status=status,
        error_class=error_class(error),
        last_failed_at=now - timedelta(hours=parked_hours or 0.1),
        parked_at=now - timedelta(hours=parked_hours) if parked_hours is not None else None,
    )


@pytest.fixture
def failures():
    """Three posts refused with 422, one of them parked two days ago; a comment that timed out."""
    for pk, hours in ((1, 48.0), (2, 1.0), (3, None)):
        failing(
            "news_post", pk, status=422, error="HTTP 422: title is required", parked_hours=hours
        )
    failing("news_comment", 9, status=None, error="no answer within # s", parked_hours=3.0)


def command(name: str, *args: str) -> tuple[int, str, str]:
    out = StringIO()
    try:
        call_command(name, *args, stdout=out)
    except CommandError as exc:
        return exc.returncode, out.getvalue(), str(exc)
    return 0, out.getvalue(), ""


def parked() -> set[tuple[str, int]]:
    rows = EntitySyncState.objects.filter(parked_at__isnull=False)
    return set(rows.values_list("entity_table", "entity_pk"))


def test_sync_status_failing_groups_by_kind_and_error_with_counts_and_oldest_age(failures):
    code, output, _ = command("sync_status", "--failing")

    lines = output.splitlines()
    assert code == 0
    assert lines[0] == "Failing entities by kind and error (4 failing, 3 parked)"
    assert lines[2].split()[:5] == ["post", "422", "3", "2", "2d"]
    assert lines[2].endswith("  HTTP #: title is required")
    assert lines[3].split()[:5] == ["comment", "none", "1", "1", "3h"]


def test_sync_status_failing_as_json(failures):
    document = json.loads(command("sync_status", "--failing", "--json")[1])

    assert (document["failing"], document["parked"]) == (4, 3)
    post = document["groups"][0]
    assert (post["kind"], post["status"], post["failing"], post["parked"]) == ("post", 422, 3, 2)
    assert post["oldest_age_seconds"] == pytest.approx(48 * 3600, rel=0.01)


@pytest.mark.parametrize(
    "args, retried",
    [
        ((), {("news_post", 1), ("news_post", 2), ("news_comment", 9)}),
        (("--kind", "post"), {("news_post", 1), ("news_post", 2)}),
        (("--status", "422"), {("news_post", 1), ("news_post", 2)}),
        (("--status", "none"), {("news_comment", 9)}),
        (("--older-than", "1d"), {("news_post", 1)}),
        (("--kind", "comment", "--older-than", "2h"), {("news_comment", 9)}),
    ],
)
def test_retry_parked_takes_filters(failures, fake_target, args, retried):
    before = parked()
    command("sync_changes", "--url", fake_target.url, "--retry-parked", *args)

    assert before - parked() == retried
    decision = SyncDecision.objects.get()
    assert (decision.action, decision.count) == ("retry", len(retried))


def test_discard_parked_settles_their_changes_and_keeps_the_decision(failures):
    code, output, _ = command("sync_changes", "--discard-parked", "--status", "422", "--yes")

    assert code == 0
    assert output.startswith("Discarded 2 entities (post 1, post 2): the target keeps what it has")
    assert parked() == {("news_comment", 9)}
    discarded = EntitySyncState.objects.filter(entity_table="news_post", entity_pk__in=[1, 2])
    assert {(s.last_error, s.attempts) for s in discarded} == {("", 0)}
    assert ModelEvent.objects.pending().filter(entity_table="news_post").count() == 1  # post 3
    decision = SyncDecision.objects.get()
    assert (decision.action, decision.count, decision.filters) == ("discard", 2, {"status": 422})
    assert decision.entities == ["post:1", "post:2"]
    assert decision.actor
    _, status, _ = command("sync_status")
    assert f"{decision.actor}: 2 discarded" in status
    _, failing_now, _ = command("sync_status", "--failing")
    assert failing_now.splitlines()[0] == "Failing entities by kind and error (2 failing, 1 parked)"


def test_discard_parked_asks_first_and_refuses_without_a_terminal(failures):
    code, _, error = command("sync_changes", "--discard-parked")

    assert code == 2
    assert error.startswith("--discard-parked drops the pending changes") and "--yes" in error
    assert len(parked()) == 3
    assert not SyncDecision.objects.exists()


def test_a_discarded_entity_is_sent_again_at_its_next_change(fake_target, seed, sync):
    [post], _ = seed(1)
    post.title = "refused"
    post.save()
    fake_target.fail(422, method="PUT")
    for _ in range(2):
        sync(max_attempts=2)
    assert parked() == {("news_post", post.pk)}
    command("sync_changes", "--discard-parked", "--yes")
    fake_target.clear_faults()
    assert sync().calls_made == 0  # nothing pending: the target keeps what it had

    post.title = "accepted"
    post.save()

    assert sync().calls_made == 1
    assert fake_target.posts[post.pk]["title"] == "accepted"


@pytest.mark.parametrize(
    "args, error",
    [
        (("--kind", "post"), "--kind goes with --retry-parked or --discard-parked"),
        (("--retry-parked", "--status", "abc"), "--status must be an HTTP status"),
        (("--retry-parked", "--older-than", "2 hours"), "--older-than must be a number and a"),
        (("--yes",), "--yes goes with --discard-parked"),
        (("--retry-parked", "--discard-parked"), "one or the other"),
    ],
)
def test_bad_filters_are_one_line_and_exit_2(args, error):
    code, _, message = command("sync_changes", *args)

    assert code == 2
    assert error in message


@pytest.fixture
def admin_client(client, django_user_model):
    superuser = django_user_model.objects.create_superuser(
        username="root", email="root@example.com", password="correct-horse-battery"
    )
    client.force_login(superuser)
    return client


CHANGELIST = "/admin/sync/entitysyncstate/"


def test_the_admin_filters_by_status_and_parked_age(admin_client, failures):
    by_status = admin_client.get(CHANGELIST, {"last_status": "422"})
    old = admin_client.get(CHANGELIST, {"parked_before": "1d"})

    assert {s.entity_pk for s in by_status.context["cl"].result_list} == {1, 2, 3}
    assert {s.entity_pk for s in old.context["cl"].result_list} == {1}


def test_the_admin_discards_after_asking(admin_client, failures):
    ids = [str(s.pk) for s in EntitySyncState.objects.filter(entity_table="news_post")]
    form = {"action": "discard", "_selected_action": ids}

    asked = admin_client.post(CHANGELIST, form)
    assert asked.status_code == 200 and b"Yes, discard" in asked.content
    assert len(parked()) == 3

    done = admin_client.post(CHANGELIST, {**form, "confirmed": "yes"}, follow=True)

    assert done.status_code == 200
    assert parked() == {("news_comment", 9)}
    decision = SyncDecision.objects.get()
    assert (decision.action, decision.actor, decision.count) == ("discard", "root", 2)
