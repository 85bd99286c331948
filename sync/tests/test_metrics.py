"""GET /metrics: the sync's figures in Prometheus' format, read from the database when scraped."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from sync.models import EntitySyncState, ModelEvent, SyncRun

pytestmark = pytest.mark.django_db


def scrape(client, **headers) -> dict[tuple[str, frozenset], float]:
    response = client.get("/metrics", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def event(table: str, event_type: str, pk: int = 1, *, age: float, lag: float | None = None):
    logged_at = timezone.now() - timedelta(seconds=age)
    synced_at = logged_at + timedelta(seconds=lag) if lag is not None else None
    return ModelEvent.objects.create(
        entity_table=table, entity_pk=pk, type=event_type, logged_at=logged_at, synced_at=synced_at
    )


@pytest.fixture
def history():
    """Pending and synced events, three runs, a failing and a parked entity."""
    now = timezone.now()
    event("news_post", "CREATED", 1, age=120)
    event("news_post", "CREATED", 2, age=5)
    event("news_comment", "UPDATED", 3, age=30)
    event("news_post", "UPDATED", 900, age=2 * 86400)  # a parked entity's: it waits for an operator
    EntitySyncState.objects.create(
        entity_table="news_post", entity_pk=900, parked_at=now, attempts=5, last_error="HTTP 400"
    )
    EntitySyncState.objects.create(
        entity_table="news_comment", entity_pk=7, attempts=1, last_error="HTTP 503"
    )
    for lag in (0.05, 0.3, 2.0, 20.0):
        event("news_post", "UPDATED", 50, age=600, lag=lag)
    finished = now - timedelta(seconds=60)
    SyncRun.objects.create(
        status=SyncRun.Status.SUCCEEDED,
        finished_at=finished,
        calls_created=3,
        calls_updated=2,
        calls_deleted=1,
    )
    SyncRun.objects.create(status=SyncRun.Status.PARTIAL, finished_at=now, calls_failed_created=2)
    SyncRun.objects.create(mode=SyncRun.Mode.FULL, status=SyncRun.Status.FAILED, finished_at=now)
    return finished


def value(samples, name: str, **labels) -> float:
    return samples[(name, frozenset(labels.items()))]


def test_metrics_report_the_backlog_runs_calls_failures_and_lag(monitoring_client, history):
    samples = scrape(monitoring_client)

    assert value(samples, "news_sync_pending_events", table="news_post", type="CREATED") == 2
    assert value(samples, "news_sync_pending_events", table="news_post", type="UPDATED") == 1
    assert value(samples, "news_sync_pending_events", table="news_comment", type="UPDATED") == 1
    assert value(samples, "news_sync_pending_events", table="news_comment", type="DELETED") == 0
    assert 119 <= value(samples, "news_sync_oldest_pending_event_age_seconds") < 130
    assert value(samples, "news_sync_runs_total", mode="incremental", status="succeeded") == 1
    assert value(samples, "news_sync_runs_total", mode="incremental", status="partial") == 1
    assert value(samples, "news_sync_runs_total", mode="full", status="failed") == 1
    assert {
        (method, outcome): value(samples, "news_sync_calls_total", method=method, outcome=outcome)
        for method in ("POST", "PUT", "DELETE")
        for outcome in ("succeeded", "failed")
    } == {
        ("POST", "succeeded"): 3,
        ("PUT", "succeeded"): 2,
        ("DELETE", "succeeded"): 1,
        ("POST", "failed"): 2,
        ("PUT", "failed"): 0,
        ("DELETE", "failed"): 0,
    }
    assert value(samples, "news_sync_failing_entities") == 1
    assert value(samples, "news_sync_parked_entities") == 1
    assert value(samples, "news_sync_last_success_timestamp_seconds") == pytest.approx(
        history.timestamp()
    )
    buckets = {
        le: value(samples, "news_sync_lag_seconds_bucket", le=le)
        for le in ("0.1", "0.25", "0.5", "1.0", "2.5", "30.0", "+Inf")
    }
    assert buckets == {
        "0.1": 1,
        "0.25": 1,
        "0.5": 2,
        "1.0": 2,
        "2.5": 3,
        "30.0": 4,
        "+Inf": 4,
    }
    assert value(samples, "news_sync_lag_seconds_count") == 4
    assert value(samples, "news_sync_lag_seconds_sum") == pytest.approx(22.35)


def test_an_empty_history_gives_zeros_not_gaps(monitoring_client):
    samples = scrape(monitoring_client)

    assert value(samples, "news_sync_oldest_pending_event_age_seconds") == 0
    assert value(samples, "news_sync_last_success_timestamp_seconds") == 0
    assert value(samples, "news_sync_lag_seconds_count") == 0
    assert value(samples, "news_sync_pending_events", table="news_post", type="CREATED") == 0
    assert value(samples, "news_sync_calls_total", method="PUT", outcome="succeeded") == 0


def test_calls_of_a_real_run_are_counted_by_method_and_outcome(
    monitoring_client, fake_target, make_post, sync
):
    make_post(title="accepted")
    make_post(title="refused")
    fake_target.fail(400, method="POST", times=1)

    report = sync()

    assert (report.calls_made, len(report.failed)) == (1, 1)
    samples = scrape(monitoring_client)
    assert value(samples, "news_sync_calls_total", method="POST", outcome="succeeded") == 1
    assert value(samples, "news_sync_calls_total", method="POST", outcome="failed") == 1
    assert value(samples, "news_sync_failing_entities") == 1
    assert value(samples, "news_sync_runs_total", mode="incremental", status="partial") == 1


# --- Who may read them ------------------------------------------------------------------------


def test_with_a_metrics_token_a_scrape_needs_it_as_a_bearer_token(monitoring_client):
    missing = Client().get("/metrics")
    wrong = monitoring_client.get("/metrics", HTTP_AUTHORIZATION="Bearer not-it")

    for response in (missing, wrong):
        assert response.status_code == 401
        assert response["WWW-Authenticate"] == 'Bearer realm="metrics"'
        assert response.json() == {
            "detail": "Authentication credentials were not provided or are wrong."
        }
    assert scrape(monitoring_client)


def test_without_a_metrics_token_metrics_are_refused_outside_debug(settings):
    settings.METRICS_TOKEN = ""

    response = Client().get("/metrics")

    assert response.status_code == 403
    assert response.json() == {
        "detail": "Set METRICS_TOKEN to read the sync's figures; without it they are answered "
        "only with DJANGO_DEBUG on."
    }
    assert b"news_sync" not in response.content


def test_without_a_metrics_token_metrics_are_open_on_a_development_server(settings):
    settings.METRICS_TOKEN = ""
    settings.DEBUG = True

    assert scrape(Client())


def test_metrics_answer_only_reads(monitoring_client):
    response = monitoring_client.post("/metrics")

    assert response.status_code == 405
    assert response["Allow"] == "GET, HEAD"
