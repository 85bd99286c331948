"""The change log in the Django admin: visible and filterable, never editable."""

import pytest
from django.utils import timezone

from sync.models import EntitySyncState, ModelEvent, SyncRun

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/sync/modelevent/"


@pytest.fixture
def logged():
    now = timezone.now()
    specs = [
        ("news_post", 11, "CREATED", None),
        ("news_post", 12, "DELETED", now),
        ("news_comment", 21, "UPDATED", None),
        ("news_comment", 22, "CREATED", now),
    ]
    return {
        (table, pk): ModelEvent.objects.create(
            entity_table=table, entity_pk=pk, type=event_type, synced_at=synced_at
        )
        for table, pk, event_type, synced_at in specs
    }


def listed(response) -> set[int]:
    return {event.pk for event in response.context["cl"].result_list}


def test_changelist_lists_every_event(admin_client, logged):
    response = admin_client.get(CHANGELIST)

    assert response.status_code == 200
    assert listed(response) == {event.pk for event in logged.values()}
    assert b"news_comment" in response.content


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("entity_table=news_post", {("news_post", 11), ("news_post", 12)}),
        ("type__exact=CREATED", {("news_post", 11), ("news_comment", 22)}),
        ("state=pending", {("news_post", 11), ("news_comment", 21)}),
        ("state=synced", {("news_post", 12), ("news_comment", 22)}),
        ("entity_table=news_comment&state=pending", {("news_comment", 21)}),
    ],
)
def test_changelist_filters_by_table_type_and_state(admin_client, logged, query, expected):
    response = admin_client.get(f"{CHANGELIST}?{query}")

    assert response.status_code == 200
    assert listed(response) == {logged[key].pk for key in expected}


def test_events_cannot_be_added_changed_or_deleted(admin_client, logged):
    event = logged[("news_post", 11)]

    add = admin_client.get(f"{CHANGELIST}add/")
    post_add = admin_client.post(f"{CHANGELIST}add/", {"entity_table": "x", "entity_pk": 1})
    change = admin_client.post(f"{CHANGELIST}{event.pk}/change/", {"entity_table": "changed"})
    delete = admin_client.post(f"{CHANGELIST}{event.pk}/delete/", {"post": "yes"})

    assert (add.status_code, post_add.status_code, change.status_code) == (403, 403, 403)
    assert delete.status_code == 403
    assert ModelEvent.objects.count() == 4
    assert ModelEvent.objects.get(pk=event.pk).entity_table == "news_post"


def test_an_event_can_be_viewed_read_only(admin_client, logged):
    event = logged[("news_comment", 21)]

    response = admin_client.get(f"{CHANGELIST}{event.pk}/change/")

    assert response.status_code == 200
    assert b"Save" not in response.content


def test_the_changelist_is_closed_to_non_staff(client, user):
    client.force_login(user)

    response = client.get(CHANGELIST)

    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


@pytest.mark.parametrize("page", ["syncrun", "entitysyncstate"])
def test_sync_runs_and_entity_states_are_listed_read_only(admin_client, page):
    SyncRun.objects.create(status=SyncRun.Status.PARTIAL, entities_failed=1)
    EntitySyncState.objects.create(
        entity_table="news_post",
        entity_pk=3,
        attempts=5,
        last_error="HTTP 400",
        parked_at=timezone.now(),
    )

    listing = admin_client.get(f"/admin/sync/{page}/")
    parked = admin_client.get("/admin/sync/entitysyncstate/?delivery=parked")

    assert listing.status_code == 200
    assert len(listing.context["cl"].result_list) == 1
    assert [s.entity_pk for s in parked.context["cl"].result_list] == [3]
    assert admin_client.get(f"/admin/sync/{page}/add/").status_code == 403
