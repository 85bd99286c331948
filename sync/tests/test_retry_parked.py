"""Un-parking after the cause is fixed: sync_changes --retry-parked [--entity post:5], and the
admin action on entity sync states."""

from io import StringIO

import pytest
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.core.management.base import CommandError

from testing.sync import state_of

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/sync/entitysyncstate/"


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
    out = StringIO()
    try:
        call_command("sync_changes", "--url", fake_target.url, "--max-rps", "0", *args, stdout=out)
    except CommandError as exc:
        return exc.returncode, out.getvalue(), str(exc)
    return 0, out.getvalue(), ""


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


# --- The admin action -----------------------------------------------------------------------------


@pytest.fixture
def superuser_client(client, django_user_model):
    client.force_login(
        django_user_model.objects.create_superuser(username="root", password="correct-horse")
    )
    return client


def test_the_retry_action_un_parks_the_selected_entities(superuser_client, parked):
    first, second = parked
    selected = [state_of(first).pk]

    response = superuser_client.post(
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
