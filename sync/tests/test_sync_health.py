"""GET /health/sync/: 200 while the sync keeps up, 503 once a change waits too long; /health/
never fails because of the sync."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from sync.models import EntitySyncState, ModelEvent, SyncRun

pytestmark = pytest.mark.django_db


def log_event(pk: int, *, age: float, table: str = "news_post") -> ModelEvent:
    return ModelEvent.objects.create(
        entity_table=table,
        entity_pk=pk,
        type="UPDATED",
        logged_at=timezone.now() - timedelta(seconds=age),
    )


def test_with_nothing_waiting_the_sync_is_healthy(monitoring_client, settings):
    settings.SYNC_HEALTH_MAX_AGE = 300
    finished = timezone.now() - timedelta(seconds=5)
    SyncRun.objects.create(status=SyncRun.Status.SUCCEEDED, finished_at=finished)

    response = monitoring_client.get("/health/sync/")

    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "pending_events": 0,
        "oldest_pending_logged_at": None,
        "oldest_pending_age_seconds": 0.0,
        "max_age_seconds": 300,
        "failing_entities": 0,
        "parked_entities": 0,
        "last_success_at": finished.isoformat(),
    }


def test_a_change_younger_than_the_limit_is_healthy(monitoring_client, settings):
    settings.SYNC_HEALTH_MAX_AGE = 300
    log_event(1, age=299)

    response = monitoring_client.get("/health/sync/")

    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert 299 <= response.json()["oldest_pending_age_seconds"] < 300


def test_a_change_waiting_longer_than_the_limit_is_503_with_the_figures(
    monitoring_client, settings
):
    settings.SYNC_HEALTH_MAX_AGE = 60
    oldest = log_event(1, age=90)
    log_event(2, age=10)

    response = monitoring_client.get("/health/sync/")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "lagging"
    assert body["pending_events"] == 2
    assert 90 <= body["oldest_pending_age_seconds"] < 95
    assert body["oldest_pending_logged_at"] == oldest.logged_at.isoformat()
    assert body["max_age_seconds"] == 60
    assert body["last_success_at"] is None


def test_a_parked_entity_does_not_make_the_sync_unhealthy_but_is_counted(
    monitoring_client, settings
):
    settings.SYNC_HEALTH_MAX_AGE = 60
    log_event(7, age=3 * 86400)
    EntitySyncState.objects.create(
        entity_table="news_post", entity_pk=7, parked_at=timezone.now(), last_error="HTTP 400"
    )

    response = monitoring_client.get("/health/sync/")

    assert response.status_code == 200
    assert response.json()["parked_entities"] == 1
    assert response.json()["pending_events"] == 1
    assert response.json()["oldest_pending_age_seconds"] == 0.0


def test_the_load_balancer_health_check_stays_up_while_the_sync_lags(monitoring_client, settings):
    settings.SYNC_HEALTH_MAX_AGE = 60
    log_event(1, age=3600)

    assert monitoring_client.get("/health/sync/").status_code == 503
    response = monitoring_client.get("/health/")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}


@pytest.mark.parametrize("path", ["/health/sync/", "/metrics"])
@pytest.mark.parametrize("method", ["post", "put", "delete", "patch"])
def test_the_sync_health_check_and_metrics_answer_a_write_405_not_a_csrf_failure(
    settings, path, method
):
    settings.METRICS_TOKEN = "s3cret-scrape-token"
    # As a monitoring system or a stray client sends it: no CSRF cookie, checks enforced.
    client = Client(enforce_csrf_checks=True, HTTP_AUTHORIZATION="Bearer s3cret-scrape-token")

    response = getattr(client, method)(path)

    assert response.status_code == 405
    assert response["Allow"] == "GET, HEAD"
    assert response.json() == {"detail": f'Method "{method.upper()}" not allowed.'}


def test_the_figures_need_the_metrics_token_as_metrics_do(monitoring_client):
    log_event(1, age=10)

    missing = Client().get("/health/sync/")
    wrong = monitoring_client.get("/health/sync/", HTTP_AUTHORIZATION="Bearer not-it")

    for response in (missing, wrong):
        assert response.status_code == 401
        assert "pending_events" not in response.json()
    assert monitoring_client.get("/health/sync/").json()["pending_events"] == 1


def test_without_a_metrics_token_the_figures_are_refused_outside_debug(settings):
    settings.METRICS_TOKEN = ""

    response = Client().get("/health/sync/")

    assert response.status_code == 403
    assert "pending_events" not in response.json()
    settings.DEBUG = True
    assert Client().get("/health/sync/").status_code == 200
