"""manage.py sync_status: pending events, the last sync runs, and entities that failed."""

import json
from datetime import timedelta
from io import StringIO

import pytest
import yaml
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from news.models import Comment, Post
from sync.changelog import PendingGroup, pending_summary
from sync.management.commands.sync_status import format_age
from sync.models import (
    EntitySyncState,
    ModelEvent,
    SyncDecision,
    SyncRun,
    SyncTarget,
    SyncVerification,
)

pytestmark = pytest.mark.django_db


def run_all(*args: str) -> str:
    out = StringIO()
    call_command("sync_status", *args, stdout=out)
    return out.getvalue()


def run() -> str:
    """The "Pending events" section of the output."""
    return run_all().split("Last sync runs")[0]


def make_event(
    table: str, event_type: str, *, age: timedelta, synced: bool = False, now=None
) -> None:
    logged_at = (now or timezone.now()) - age
    ModelEvent.objects.create(
        entity_table=table,
        entity_pk=1,
        type=event_type,
        logged_at=logged_at,
        synced_at=logged_at if synced else None,
    )


def test_no_pending_events_says_so():
    make_event("news_post", "CREATED", age=timedelta(days=3), synced=True)

    assert run() == "Pending events\n  No pending events.\n"


def test_prints_count_and_oldest_age_per_table_and_type():
    make_event("news_post", "CREATED", age=timedelta(hours=5, minutes=3))
    make_event("news_post", "CREATED", age=timedelta(minutes=2))
    make_event("news_post", "DELETED", age=timedelta(days=2, hours=1))
    make_event("news_comment", "UPDATED", age=timedelta(seconds=30))
    make_event("news_post", "UPDATED", age=timedelta(days=9), synced=True)

    lines = run().splitlines()

    assert lines[0] == "Pending events"
    assert lines[1].split() == ["table", "type", "count", "oldest"]
    assert [line.split() for line in lines[2:]] == [
        ["news_comment", "UPDATED", "1", "30s"],
        ["news_post", "CREATED", "2", "5h", "03m"],
        ["news_post", "DELETED", "1", "2d", "1h"],
        ["total", "4", "2d", "1h"],
    ]


def test_counts_events_written_by_real_changes():
    post = Post.objects.create(user_id=1, title="Hello")
    Comment.objects.create(post=post, name="Ann", email="ann@example.com")
    post.save()

    output = run()

    assert ModelEvent.objects.pending().count() == 3
    assert [line.split()[:3] for line in output.splitlines()[2:]] == [
        ["news_comment", "CREATED", "1"],
        ["news_post", "CREATED", "1"],
        ["news_post", "UPDATED", "1"],
        ["total", "3", "0s"],
    ]


def test_pending_summary_returns_one_group_per_table_and_type():
    now = timezone.now()
    make_event("news_post", "CREATED", age=timedelta(minutes=10), now=now)
    make_event("news_post", "CREATED", age=timedelta(minutes=20), now=now)

    [group] = pending_summary(now=now)

    assert isinstance(group, PendingGroup)
    assert (group.entity_table, group.type, group.count) == ("news_post", "CREATED", 2)
    assert group.oldest_age == timedelta(minutes=20)
    assert group.oldest_logged_at == now - timedelta(minutes=20)


@pytest.mark.parametrize(
    ("age", "text"),
    [
        (timedelta(seconds=0), "0s"),
        (timedelta(seconds=59), "59s"),
        (timedelta(minutes=5, seconds=9), "5m 09s"),
        (timedelta(hours=3, minutes=12, seconds=40), "3h 12m"),
        (timedelta(days=2, hours=4, minutes=59), "2d 4h"),
    ],
)
def test_ages_are_short_and_readable(age, text):
    assert format_age(age) == text


def test_says_when_no_sync_has_run_and_nothing_failed():
    output = run_all()

    assert "Last sync runs\n  No sync has run yet.\n" in output
    assert "Failed entities\n  None.\n" in output
    assert "Target\n  None yet: the import or the first run names it.\n" in output
    assert output.endswith(
        "Last verification\n  None yet: sync_changes --verify compares the target with the "
        "database.\n"
    )


def test_names_the_target_and_the_fields_it_rewrites():
    SyncTarget.objects.create(url="http://127.0.0.1:3000", rewrites={"comment": ["email"]})

    lines = run_all().splitlines()
    target = lines[lines.index("Target") + 1]

    assert target.startswith("  http://127.0.0.1:3000 (since ")
    assert target.endswith("; it rewrites comment email")
    document = json.loads(run_all("--json"))
    assert document["target"]["url"] == "http://127.0.0.1:3000"
    assert document["target"]["rewrites"] == {"comment": ["email"]}


def test_lists_the_last_runs_newest_first_with_their_counts():
    started = timezone.now() - timedelta(minutes=10)
    SyncRun.objects.create(
        started_at=started,
        finished_at=started + timedelta(seconds=3),
        status=SyncRun.Status.SUCCEEDED,
        entities_synced=42,
        calls_created=10,
        calls_updated=25,
        calls_deleted=7,
    )
    SyncRun.objects.create(
        started_at=started + timedelta(minutes=5),
        mode=SyncRun.Mode.FULL,
        status=SyncRun.Status.PARTIAL,
        entities_synced=1,
        entities_failed=2,
    )

    section = run_all().split("Last sync runs\n")[1].split("Failed entities")[0]
    lines = section.splitlines()

    assert len(lines) == 2
    assert "full partial: 1 synced, 2 failed" in lines[0]
    assert lines[0].endswith("unfinished")
    assert "incremental succeeded: 42 synced, 0 failed" in lines[1]
    assert "calls 10 created, 25 updated, 7 deleted; 3.0 s" in lines[1]


def test_lists_failed_entities_parked_first_with_their_errors():
    now = timezone.now()
    EntitySyncState.objects.create(
        entity_table="news_post",
        entity_pk=7,
        attempts=1,
        last_error="PUT /posts/7: HTTP 400 Bad Request",
        last_failed_at=now,
    )
    EntitySyncState.objects.create(
        entity_table="news_comment",
        entity_pk=9,
        attempts=5,
        last_error="POST /comments: HTTP 422",
        last_failed_at=now - timedelta(hours=1),
        parked_at=now,
    )
    EntitySyncState.objects.create(
        entity_table="news_post",
        entity_pk=6,
        last_error="PUT /posts/6: no answer within 10 s",
        last_failed_at=now - timedelta(hours=2),
    )
    EntitySyncState.objects.create(entity_table="news_post", entity_pk=8, remote_id=108)

    section = run_all().split("Failed entities (3)\n")[1].split("Target\n")[0]

    assert section.splitlines() == [
        "  news_comment#9 PARKED after 5 failed runs: POST /comments: HTTP 422",
        "  news_post#7 retrying (1 failed run counted towards parking): "
        "PUT /posts/7: HTTP 400 Bad Request",
        "  news_post#6 retrying (a passing failure, not counted towards parking): "
        "PUT /posts/6: no answer within 10 s",
    ]


# --- For scripts: --json, and --check for health checks -------------------------------------------


def run_json() -> dict:
    out = StringIO()
    call_command("sync_status", "--json", stdout=out)
    return json.loads(out.getvalue())


def park_post_3(now) -> None:
    """Post 3, parked after 5 failed runs of a POST answered 400."""
    EntitySyncState.objects.create(
        entity_table="news_post",
        entity_pk=3,
        attempts=5,
        last_error="POST /posts: HTTP 400",
        last_failed_at=now,
        parked_at=now,
    )


def test_json_gives_the_same_facts_as_the_text(settings):
    settings.SYNC_HEALTH_MAX_AGE = 300
    now = timezone.now()
    make_event("news_post", "CREATED", age=timedelta(minutes=2), now=now)
    make_event("news_post", "CREATED", age=timedelta(seconds=20), now=now)
    make_event("news_comment", "DELETED", age=timedelta(seconds=30), now=now)
    run = SyncRun.objects.create(
        status=SyncRun.Status.PARTIAL,
        started_at=now - timedelta(seconds=10),
        finished_at=now - timedelta(seconds=7),
        events_pending=4,
        calls_created=2,
        calls_failed_created=1,
        entities_synced=2,
        entities_failed=1,
        error_summary="POST post 3: HTTP 400",
    )
    park_post_3(now)

    document = run_json()

    assert document["pending"]["total"] == 3
    assert 120 <= document["pending"]["oldest_age_seconds"] < 125
    assert [(g["table"], g["type"], g["count"]) for g in document["pending"]["groups"]] == [
        ("news_comment", "DELETED", 1),
        ("news_post", "CREATED", 2),
    ]
    assert document["runs"] == [
        {
            "id": run.pk,
            "mode": "incremental",
            "target": "",
            "status": "partial",
            "started_at": run.started_at.isoformat(),
            "finished_at": run.finished_at.isoformat(),
            "duration_seconds": 3.0,
            "events_pending": 4,
            "entities_synced": 2,
            "entities_unchanged": 0,
            "entities_failed": 1,
            "calls": {"created": 2, "updated": 0, "deleted": 0},
            "failed_calls": {"created": 1, "updated": 0, "deleted": 0},
            "error_summary": "POST post 3: HTTP 400",
        }
    ]
    assert document["failed_entities"] == {
        "total": 1,
        "entities": [
            {
                "table": "news_post",
                "pk": 3,
                "remote_id": None,
                "parked": True,
                "status": "PARKED after 5 failed runs",
                "attempts": 5,
                "parked_at": now.isoformat(),
                "last_failed_at": now.isoformat(),
                "last_error": "POST /posts: HTTP 400",
            }
        ],
    }
    assert document["health"]["status"] == "ok"
    assert document["health"]["parked_entities"] == 1


def test_json_of_an_idle_sync_is_empty_lists_and_zeros():
    document = run_json()

    assert document["pending"] == {"total": 0, "oldest_age_seconds": 0.0, "groups": []}
    assert document["runs"] == []
    assert document["failed_entities"] == {"total": 0, "entities": []}
    assert document["health"]["status"] == "ok"


def test_check_exits_1_with_one_line_when_a_change_waits_too_long(settings):
    settings.SYNC_HEALTH_MAX_AGE = 60
    make_event("news_post", "UPDATED", age=timedelta(seconds=90))

    with pytest.raises(CommandError) as raised:
        call_command("sync_status", "--check", stdout=StringIO())

    assert raised.value.returncode == 1
    assert str(raised.value).startswith("lagging: the oldest change waiting is 9")
    assert str(raised.value).endswith("s old (SYNC_HEALTH_MAX_AGE is 60 s)")


def test_check_passes_while_the_sync_keeps_up(settings):
    settings.SYNC_HEALTH_MAX_AGE = 60
    make_event("news_post", "UPDATED", age=timedelta(seconds=30))
    out = StringIO()

    call_command("sync_status", "--check", stdout=out)

    assert out.getvalue().startswith("Pending events\n")


def test_the_compose_health_check_of_the_sync_service_is_sync_status_check(settings):
    """docker-compose.yml's `sync` service follows the log and checks its health this way."""
    services = yaml.safe_load((settings.BASE_DIR / "docker-compose.yml").read_text())["services"]
    sync = services["sync"]
    check = sync["healthcheck"]["test"]
    assert sync["command"] == ["python", "manage.py", "sync_changes", "--follow"]
    assert check[:3] == ["CMD", "python", "manage.py"]
    settings.SYNC_HEALTH_MAX_AGE = 60

    call_command(*check[3:], stdout=StringIO())
    make_event("news_post", "UPDATED", age=timedelta(seconds=61))
    with pytest.raises(CommandError):
        call_command(*check[3:], stdout=StringIO())


def shape(value):
    """The keys of a JSON document, nested; a list by its first item."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return None


def test_the_json_document_docs_show_has_the_keys_the_command_gives():
    """docs/operations.md's `sync_status --json`: every key there is one the command gives, and
    the reverse, with a target, a verification, a decision, a run and a parked entity."""
    now = timezone.now()
    make_event("news_post", "CREATED", age=timedelta(seconds=2), now=now)
    SyncTarget.objects.create(url="http://127.0.0.1:3000", rewrites={"comment": ["email"]})
    SyncVerification.objects.create(
        target="http://127.0.0.1:3000",
        finished_at=now,
        equal=True,
        counts={"posts": {"missing": 0, "extra": 0, "different": 0}},
    )
    SyncDecision.objects.create(
        action="retry", actor="ops", count=1, filters={"kind": "post"}, entities=["post:3"]
    )
    SyncRun.objects.create(status=SyncRun.Status.SUCCEEDED, started_at=now, finished_at=now)
    park_post_3(now)
    docs = (settings.BASE_DIR / "docs" / "operations.md").read_text()
    shown = docs.split("#### `sync_status --json`", 1)[1].split("```json", 1)[1]
    shown = json.loads(shown.split("```", 1)[0].replace('"...",', '"",').replace('"..."', '""'))

    given = run_json()

    assert shape(shown) == shape(given)
