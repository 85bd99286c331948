"""sync_changes --verify: proving the target equal, read-only, without the run lock."""

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection

from sync.locking import exclusive_run
from sync.models import EntitySyncState, ModelEvent, SyncVerification
from testing.commands import run_command
from testing.sync import writes

pytestmark = pytest.mark.django_db


def verify(url: str, *args: str) -> tuple[int, str, str]:
    return run_command("sync_changes", "--url", url, "--verify", *args)


def states() -> list[tuple]:
    return sorted(EntitySyncState.objects.values_list("entity_pk", "remote_key", "delivered_hash"))


def test_an_equal_target_exits_0_and_says_so(fake_target, seed):
    seed(3, comments_per_post=2)

    code, output, _ = verify(fake_target.url)

    assert code == 0
    assert output.splitlines()[0].startswith(f"Verified {fake_target.url} against the database")
    assert output.splitlines()[0].endswith(": equal")
    assert "  posts: 0 missing, 0 extra, 0 different" in output.splitlines()
    assert SyncVerification.objects.get().equal


def test_a_raw_sql_update_never_reaches_the_change_log_and_verify_finds_it(fake_target, seed):
    [post, _], _ = seed(2)
    with connection.cursor() as cursor:
        cursor.execute("UPDATE news_post SET title = %s WHERE id = %s", ["changed in SQL", post.pk])
    assert ModelEvent.objects.count() == 0

    code, output, error = verify(fake_target.url)

    assert code == 1
    assert "  posts: 0 missing, 0 extra, 1 different" in output.splitlines()
    assert error.startswith("The target differs from the database in 1 records;")
    assert "--full" in error


def test_missing_extra_and_different_records_are_counted_per_kind(fake_target, seed):
    [kept, edited, gone], [comment, *_] = seed(3, comments_per_post=1)
    fake_target.posts[edited.pk]["title"] = "drifted"
    del fake_target.posts[gone.pk]
    fake_target.comments[900] = {"id": 900, "postId": kept.pk, "name": "x", "email": "x@y.z"}
    del fake_target.comments[comment.pk]

    code, output, _ = verify(fake_target.url)

    assert code == 1
    assert "  posts: 1 missing, 0 extra, 1 different" in output.splitlines()
    assert "  comments: 1 missing, 1 extra, 0 different" in output.splitlines()


def test_it_sends_nothing_changes_no_state_and_takes_no_lock(fake_target, seed):
    [post], _ = seed(1)
    post.title = "edited"
    post.save()
    before = states()

    with exclusive_run():  # a run holds the lock meanwhile
        code, output, _ = verify(fake_target.url)

    assert code == 1
    assert "1 of them are changes the next run delivers (pending events)" in output
    assert writes(fake_target) == []
    assert states() == before
    assert ModelEvent.objects.pending().count() == 1


def test_json_lists_the_differences_capped(fake_target, seed):
    seed(2)
    fake_target.posts.update(
        {n: {"id": n, "userId": 1, "title": "x", "body": "y"} for n in range(500, 650)}
    )

    code, output, _ = verify(fake_target.url, "--json")

    document = json.loads(output)
    assert code == 1
    assert (document["equal"], document["total"]) == (False, 150)
    assert document["counts"]["posts"] == {"missing": 0, "extra": 150, "different": 0}
    assert document["listed"] == len(document["differences"]) == 100
    assert document["differences"][0] == {
        "kind": "post",
        "what": "extra",
        "entity": None,
        "remote_id": 500,
        "awaiting_delivery": False,
    }


def test_sync_status_and_metrics_show_the_last_verification(fake_target, seed, client, settings):
    settings.METRICS_TOKEN = "scraper"
    [post], _ = seed(1)
    fake_target.posts[post.pk]["body"] = "drifted"
    verify(fake_target.url)

    status = StringIO()
    call_command("sync_status", stdout=status)
    lines = status.getvalue().splitlines()
    at = lines.index("Last verification")
    assert lines[at + 1].endswith("ago): 1 differences")
    assert lines[at + 2] == "  posts: 0 missing, 0 extra, 1 different"
    metrics = client.get("/metrics", HTTP_AUTHORIZATION="Bearer scraper").content.decode()
    assert 'news_sync_verify_differences{kind="posts",what="different"} 1.0' in metrics
    assert "news_sync_verify_timestamp_seconds 0.0" not in metrics


def test_a_verification_of_another_target_is_not_the_synced_targets_last(
    fake_target, seed, client, settings
):
    """`--verify --url` of a target the sync does not go to says what it found there, and
    leaves what sync_status and /metrics report of the synced one as it was."""
    from fake_target import FakeTarget
    from sync.models import SyncTarget

    settings.METRICS_TOKEN = "scraper"
    seed(1)
    SyncTarget.adopt(fake_target.url)
    assert verify(fake_target.url)[0] == 0
    with FakeTarget() as other:
        code, output, _ = verify(other.url)

    assert code == 1 and "1 missing" in output
    status = StringIO()
    call_command("sync_status", stdout=status)
    lines = status.getvalue().splitlines()
    assert lines[lines.index("Last verification") + 1].endswith("ago): equal")
    metrics = client.get("/metrics", HTTP_AUTHORIZATION="Bearer scraper").content.decode()
    assert 'news_sync_verify_differences{kind="posts",what="missing"} 0.0' in metrics


def test_a_verification_made_before_the_target_was_taken_on_again_is_not_its_last(
    fake_target, seed
):
    from sync.models import SyncTarget

    [post], _ = seed(1)
    SyncTarget.adopt(fake_target.url)
    fake_target.posts[post.pk]["body"] = "drifted"
    verify(fake_target.url)
    SyncTarget.adopt(fake_target.url)  # as a --full run to another target, then back, does

    status = StringIO()
    call_command("sync_status", stdout=status)
    lines = status.getvalue().splitlines()
    assert lines[lines.index("Last verification") + 1].startswith("  None yet")


@pytest.mark.parametrize("other", ["--full", "--dry-run", "--follow", "--retry-parked"])
def test_verify_goes_alone(fake_target, other):
    code, _, error = verify(fake_target.url, other)

    assert code == 2
    assert "--verify goes alone" in error
