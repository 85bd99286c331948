"""Failing and parked entities in an operator's hands: listed by kind and error, un-parked once
the cause is fixed (`sync_changes --retry-parked`, for one entity or by filters) or discarded,
from the command line and the admin; each decision kept in the sync history."""

import json
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone

from sync.errors import error_class
from sync.models import EntitySyncState, ModelEvent, SyncDecision
from testing.commands import run_command
from testing.sync import state_of

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/sync/entitysyncstate/"


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


@pytest.fixture
def parked(fake_target, make_post, sync):
    """Two posts the target refused until they were parked; the cause is then fixed."""
    posts = [make_post(title="refused"), make_post(title="refused too")]
    fake_target.fail(400, method="POST")
    assert not sync(max_attempts=1).ok
    fake_target.clear_faults()
    fake_target.reset_log()
    assert all(state_of(post).parked_at for post in posts)
    return posts


def sync_command(fake_target, *args: str) -> tuple[int, str, str]:
    return run_command("sync_changes", "--url", fake_target.url, "--max-rps", "0", *args)


def parked_entities() -> set[tuple[str, int]]:
    rows = EntitySyncState.objects.filter(parked_at__isnull=False)
    return set(rows.values_list("entity_table", "entity_pk"))


# --- What is failing: sync_status --failing ------------------------------------------------------


def test_sync_status_failing_groups_by_kind_and_error_with_counts_and_oldest_age(failures):
    code, output, _ = run_command("sync_status", "--failing")

    lines = output.splitlines()
    assert code == 0
    assert lines[0] == "Failing entities by kind and error (4 failing, 3 parked)"
    assert lines[2].split()[:5] == ["post", "422", "3", "2", "2d"]
    assert lines[2].endswith("  HTTP #: title is required")
    assert lines[3].split()[:5] == ["comment", "none", "1", "1", "3h"]


def test_sync_status_failing_as_json(failures):
    document = json.loads(run_command("sync_status", "--failing", "--json")[1])

    assert (document["failing"], document["parked"]) == (4, 3)
    post = document["groups"][0]
    assert (post["kind"], post["status"], post["failing"], post["parked"]) == ("post", 422, 3, 2)
    assert post["oldest_age_seconds"] == pytest.approx(48 * 3600, rel=0.01)


# --- Retrying: --retry-parked, for one entity or by filters --------------------------------------


def test_retry_parked_sends_the_parked_entities_again(fake_target, parked):
    code, output, _ = sync_command(fake_target, "--retry-parked")

    assert code == 0
    lines = output.splitlines()
    assert (
        lines[0]
        == f"Un-parked 2 entities (post {parked[0].pk}, post {parked[1].pk}): this run sends them"
    )
    assert lines[1].startswith("Synced 2 entities with 2 calls (2 created, 0 updated, 0 deleted)")
    assert sorted(fake_target.posts) == sorted(post.pk for post in parked)
    assert all(state_of(post).parked_at is None for post in parked)
    assert all(state_of(post).attempts == 0 for post in parked)


def test_retry_parked_with_an_entity_sends_only_that_one(fake_target, parked):
    first, second = parked

    code, output, error = sync_command(
        fake_target, "--retry-parked", "--entity", f"post:{first.pk}"
    )

    assert output.splitlines()[0] == f"Un-parked 1 entities (post {first.pk}): this run sends them"
    assert list(fake_target.posts) == [first.pk]
    assert state_of(first).parked_at is None
    assert state_of(second).parked_at is not None
    # The other one is still parked: the run says so, as any run does.
    assert code == 1
    assert f"FAILED post {second.pk}: parked after repeated failures" in output
    assert error.startswith("1 entities were not delivered")


def test_retry_parked_without_anything_parked_says_so_and_runs(fake_target, make_post):
    make_post()

    code, output, _ = sync_command(fake_target, "--retry-parked")

    assert code == 0
    assert output.splitlines()[0] == "No parked entities to retry"
    assert len(fake_target.posts) == 1


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
    before = parked_entities()
    run_command("sync_changes", "--url", fake_target.url, "--retry-parked", *args)

    assert before - parked_entities() == retried
    decision = SyncDecision.objects.get()
    assert (decision.action, decision.count) == ("retry", len(retried))


# --- Discarding: --discard-parked ----------------------------------------------------------------


def test_discard_parked_settles_their_changes_and_keeps_the_decision(failures):
    code, output, _ = run_command("sync_changes", "--discard-parked", "--status", "422", "--yes")

    assert code == 0
    assert output.startswith("Discarded 2 entities (post 1, post 2): the target keeps what it has")
    assert parked_entities() == {("news_comment", 9)}
    discarded = EntitySyncState.objects.filter(entity_table="news_post", entity_pk__in=[1, 2])
    assert {(s.last_error, s.attempts) for s in discarded} == {("", 0)}
    assert ModelEvent.objects.pending().filter(entity_table="news_post").count() == 1  # post 3
    decision = SyncDecision.objects.get()
    assert (decision.action, decision.count, decision.filters) == ("discard", 2, {"status": 422})
    assert decision.entities == ["post:1", "post:2"]
    assert decision.actor
    _, status, _ = run_command("sync_status")
    assert f"{decision.actor}: 2 discarded" in status
    _, failing_now, _ = run_command("sync_status", "--failing")
    assert failing_now.splitlines()[0] == "Failing entities by kind and error (2 failing, 1 parked)"


def test_discard_parked_asks_first_and_refuses_without_a_terminal(failures):
    code, _, error = run_command("sync_changes", "--discard-parked")

    assert code == 2
    assert error.startswith("--discard-parked drops the pending changes") and "--yes" in error
    assert len(parked_entities()) == 3
    assert not SyncDecision.objects.exists()


def test_a_discarded_entity_is_sent_again_at_its_next_change(fake_target, seed, sync):
    [post], _ = seed(1)
    post.title = "refused"
    post.save()
    fake_target.fail(422, method="PUT")
    for _ in range(2):
        sync(max_attempts=2)
    assert parked_entities() == {("news_post", post.pk)}
    run_command("sync_changes", "--discard-parked", "--yes")
    fake_target.clear_faults()
    assert sync().calls_made == 0  # nothing pending: the target keeps what it had

    post.title = "accepted"
    post.save()

    assert sync().calls_made == 1
    assert fake_target.posts[post.pk]["title"] == "accepted"


# --- Bad usage: one line, exit 2, nothing changed ------------------------------------------------


ENTITY_FORMAT = "--entity must be post:ID or comment:ID with a positive ID, e.g. post:5; got "


@pytest.mark.parametrize(
    "args, message",
    [
        (["--retry-parked", "--entity", "post:abc"], ENTITY_FORMAT + "'post:abc'"),
        (["--retry-parked", "--entity", "album:5"], ENTITY_FORMAT + "'album:5'"),
        (["--retry-parked", "--entity", "comment:0"], ENTITY_FORMAT + "'comment:0'"),
        (["--entity", "post:5"], "--entity goes with --retry-parked or --discard-parked"),
        (
            ["--retry-parked", "--dry-run"],
            "--retry-parked changes the database: it cannot go with --dry-run",
        ),
        (["--follow", "--full"], "--follow cannot go with --dry-run or --full"),
        (["--follow", "--dry-run"], "--follow cannot go with --dry-run or --full"),
    ],
)
def test_bad_usage_exits_2_with_one_line_and_changes_nothing(fake_target, parked, args, message):
    code, output, error = sync_command(fake_target, *args)

    assert (code, output, error) == (2, "", message)
    assert all(state_of(post).parked_at for post in parked)
    assert fake_target.calls() == []


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
    code, _, message = run_command("sync_changes", *args)

    assert code == 2
    assert error in message


# --- In the admin --------------------------------------------------------------------------------


def test_the_retry_action_un_parks_the_selected_entities(admin_client, parked):
    first, second = parked
    selected = [state_of(first).pk]

    response = admin_client.post(
        CHANGELIST, {"action": "retry", "_selected_action": selected}, follow=True
    )

    assert response.status_code == 200
    messages = [str(m) for m in response.context["messages"]]
    assert messages == [f"Un-parked 1 entities (post {first.pk}): the next run sends them."]
    assert state_of(first).parked_at is None
    assert state_of(second).parked_at is not None


def test_the_retry_action_needs_the_right_to_change_sync_states(client, django_user_model, parked):
    viewer = django_user_model.objects.create_user(
        username="viewer", password="correct-horse", is_staff=True
    )
    viewer.user_permissions.add(Permission.objects.get(codename="view_entitysyncstate"))
    client.force_login(viewer)

    page = client.get(CHANGELIST)
    response = client.post(
        CHANGELIST, {"action": "retry", "_selected_action": [state_of(parked[0]).pk]}
    )

    assert page.status_code == 200
    assert b"Retry the selected parked entities" not in page.content
    assert response.status_code in (200, 302)
    assert state_of(parked[0]).parked_at is not None


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
    assert len(parked_entities()) == 3

    done = admin_client.post(CHANGELIST, {**form, "confirmed": "yes"}, follow=True)

    assert done.status_code == 200
    assert parked_entities() == {("news_comment", 9)}
    decision = SyncDecision.objects.get()
    assert (decision.action, decision.actor, decision.count) == ("discard", "root", 2)
