"""A run paces itself to what the target allows: a Retry-After pauses every call, a rate-limited
target slows the run down to its rate, the rate chosen is kept for the next run and shown."""

from io import StringIO

import pytest
from django.core.management import call_command

from sync.client import TargetApiClient
from sync.models import SyncTarget
from sync.syncing import SyncOptions, sync_changes
from testing.sync import expected_target, pending_count, target_state

pytestmark = [pytest.mark.django_db, pytest.mark.timeout(120)]


def run(url: str, *, concurrency: int = 4, max_rps: float = 0.0):
    with TargetApiClient(
        base_url=url, timeout=2.0, retries=4, backoff_factor=0.01, backoff_max=0.02, max_rps=max_rps
    ) as client:
        return sync_changes(client=client, options=SyncOptions(concurrency=concurrency))


def test_a_retry_after_pauses_every_call_of_the_run(fake_target, edited_posts):
    edited_posts(12)
    fake_target.latency = 0.02
    fake_target.fail(429, retry_after=1, method="PUT", times=1)

    report = run(fake_target.url)

    assert report.ok, report.failed
    refused = next(r for r in fake_target.calls() if r.status == 429)
    during = [
        r
        for r in fake_target.calls()
        if refused.answered_at < r.received_at < refused.answered_at + 0.9
    ]
    # Calls already in flight (at most the others of the four) may arrive; none starts.
    assert len(during) <= 3
    assert target_state(fake_target) == expected_target()


def test_a_rate_limited_target_slows_the_run_to_its_rate_and_everything_arrives(
    fake_target, edited_posts
):
    posts = edited_posts(80)
    fake_target.rate_limit = 25

    report = run(fake_target.url, concurrency=8)

    assert report.ok, report.failed
    assert pending_count() == 0
    assert target_state(fake_target) == expected_target()
    refused = [r for r in fake_target.calls() if r.status == 429]
    # Paced, only the calls sent while the rate is found are refused: fewer than a third (21 of 80
    # once, on a machine loaded by other runs).
    assert len(refused) < len(posts) / 3
    settled = SyncTarget.objects.get().rate
    assert 0 < settled < 50


def test_the_next_run_starts_from_the_rate_the_last_one_settled_on(fake_target, seed):
    posts, _ = seed(60)
    fake_target.rate_limit = 25
    for post in posts[:30]:
        post.title = "edited"
        post.save()
    assert run(fake_target.url, concurrency=8).ok
    fake_target.reset_log()
    for post in posts[30:]:
        post.title = "edited"
        post.save()

    assert run(fake_target.url, concurrency=8).ok

    assert len([r for r in fake_target.calls() if r.status == 429]) <= 3


def test_the_rate_is_a_metric_and_sync_status_shows_it(fake_target, seed, client, settings):
    SyncTarget.adopt(fake_target.url)
    SyncTarget.objects.update(rate=12.5)
    settings.METRICS_TOKEN = "scraper"

    metrics = client.get("/metrics", HTTP_AUTHORIZATION="Bearer scraper").content.decode()
    status = StringIO()
    call_command("sync_status", stdout=status)

    assert "news_sync_target_rate 12.5" in metrics
    assert "; paced at 12.5 calls/s" in status.getvalue()


def test_the_ceiling_holds_whatever_the_target_allows(fake_target, edited_posts):
    edited_posts(10)

    report = run(fake_target.url, concurrency=4, max_rps=20)

    assert report.ok
    puts = sorted(r.received_at for r in fake_target.calls("PUT"))
    assert puts[-1] - puts[0] >= 9 / 20 - 0.05
    assert SyncTarget.objects.get().rate == 20
