"""Failures: what a run retries at once, what it leaves for the next run, what it records, when
it parks an entity, and when it stops early (an unreachable target, its time budget).

Every test drives the real service against the fake target and asserts what reached the target
(its request log and state) and what the database remembers (pending events, sync state).

What an operator does with parked entities (retry, discard) is in test_unparking.py.
"""

import time

import pytest

from news.models import Post
from sync.client import TargetApiClient
from sync.models import EntitySyncState, SyncRun
from sync.planner import Kind
from sync.syncing.dispatch import CIRCUIT_BREAKER_THRESHOLD
from testing.ports import free_port
from testing.sync import (
    delivered,
    expected_target,
    pending_count,
    post_record,
    remote_ids,
    state_of,
    target_state,
    writes,
)

pytestmark = [pytest.mark.django_db, pytest.mark.timeout(60)]


# --- Retried within the run ----------------------------------------------------------------------


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_a_500_is_retried_within_the_run(fake_target, seed, make_post, sync, method):
    [updated, deleted], _ = seed(2)
    make_post()
    updated.title = "changed"
    updated.save()
    deleted.delete()
    fake_target.fail(500, method=method, times=1)

    report = sync()

    assert report.ok and report.calls_made == 3
    assert [r.status for r in fake_target.calls(method)][0] == 500
    assert target_state(fake_target) == expected_target()
    assert pending_count() == 0


def test_503s_up_to_the_retries_are_delivered_in_the_same_run(fake_target, seed, sync):
    [post], _ = seed(1)
    post.title = "changed"
    post.save()
    fake_target.fail(503, method="PUT", times=2)  # the target_client retries twice

    report = sync()

    assert report.ok
    assert [r.status for r in fake_target.calls()] == [503, 503, 200]
    assert pending_count() == 0


def test_retry_after_of_a_429_is_honoured(fake_target, seed, sync):
    [post], _ = seed(1)
    post.title = "changed"
    post.save()
    fake_target.fail(429, retry_after=1, times=1)

    started = time.monotonic()
    report = sync()

    assert time.monotonic() - started >= 1.0
    assert report.ok
    assert [r.status for r in fake_target.calls()] == [429, 200]


def test_a_closed_connection_on_a_put_is_retried(fake_target, seed, sync):
    [post], _ = seed(1)
    post.title = "changed"
    post.save()
    fake_target.drop(method="PUT", times=1)

    assert sync().ok
    assert [r.status for r in fake_target.calls()] == [None, 200]
    assert target_state(fake_target) == expected_target()


def test_a_stalled_call_is_retried_after_the_timeout(fake_target, seed, sync):
    [post], _ = seed(1)
    post.title = "changed"
    post.save()
    fake_target.stall(0.6, method="PUT", times=1)

    with TargetApiClient(
        base_url=fake_target.url, timeout=0.2, retries=2, backoff_factor=0.01, backoff_max=0.02
    ) as client:
        report = sync(client=client)

    assert report.ok
    assert len(fake_target.calls("PUT")) == 2
    assert pending_count() == 0


# --- Left for the next run -----------------------------------------------------------------------


def test_503s_beyond_the_retries_leave_the_change_for_the_next_run(fake_target, seed, sync):
    [post, other], _ = seed(2)
    post.title = "changed"
    post.save()
    other.title = "changed too"
    other.save()
    fake_target.fail(503, method="PUT", path=f"/posts/{post.pk}", times=3)

    report = sync()

    assert [str(failed) for failed in report.failed] == [
        f"PUT post {post.pk}: PUT {fake_target.url}/posts/{post.pk}: "
        'HTTP 503 Service Unavailable (application/json): {"error":"Service Unavailable"}'
    ]
    assert not report.failed[0].permanent
    assert report.entities_synced == 1
    assert pending_count() == 1
    state = state_of(post)
    # The target answered the other call, so the 5xx counts towards parking this entity.
    assert "HTTP 503" in state.last_error and state.attempts == 1
    assert SyncRun.objects.get(pk=report.run_id).status == "partial"

    fake_target.reset_log()
    report = sync()

    assert report.ok
    assert writes(fake_target) == [("PUT", f"/posts/{post.pk}")]
    assert pending_count() == 0
    assert delivered(post) and state_of(post).attempts == 0
    assert target_state(fake_target) == expected_target()


def test_a_target_that_never_answers_in_time_leaves_the_change_pending(fake_target, seed, sync):
    [post], _ = seed(1)
    post.title = "changed"
    post.save()
    fake_target.stall(0.5, method="PUT")

    with TargetApiClient(
        base_url=fake_target.url, timeout=0.2, retries=1, backoff_factor=0.01, backoff_max=0.02
    ) as client:
        report = sync(client=client)

    assert [f.error for f in report.failed] == [
        f"PUT {fake_target.url}/posts/{post.pk}: no answer within 0.2 s"
    ]
    assert pending_count() == 1
    assert "no answer within 0.2 s" in state_of(post).last_error


def test_comments_of_a_post_whose_create_failed_wait_for_it(
    fake_target, make_post, make_comment, sync
):
    post = make_post()
    comments = [make_comment(post) for _ in range(3)]
    fake_target.fail(503, method="POST", path="/posts", times=3)

    report = sync()

    assert [(r.method, r.path) for r in fake_target.calls() if r.method != "GET"] == [
        ("POST", "/posts")
    ] * 3
    assert len(report.failed) == 4
    assert pending_count() == 4

    fake_target.reset_log()
    assert sync().ok
    assert writes(fake_target) == [("POST", "/posts")] + [("POST", "/comments")] * 3
    assert [r.body["id"] for r in fake_target.calls("POST", "/comments")] == [
        c.pk for c in comments
    ]
    assert target_state(fake_target) == expected_target()


# --- Refused: recorded, not retried, blocking no one ---------------------------------------------


def test_a_permanent_error_is_recorded_not_retried_and_blocks_no_one(
    fake_target, make_post, make_comment, sync
):
    refused, accepted = make_post(title="refused"), make_post(title="accepted")
    held, accepted_comment = make_comment(refused), make_comment(accepted)
    fake_target.fail(400, method="POST", path="/posts", times=1, body={"error": "bad title"})

    report = sync()

    assert writes(fake_target) == [("POST", "/posts"), ("POST", "/posts"), ("POST", "/comments")]
    assert fake_target.calls("POST", "/posts")[0].body["id"] == refused.pk
    assert fake_target.calls("POST", "/comments")[0].body["id"] == accepted_comment.pk
    assert {(f.entity.kind, f.entity.pk, f.permanent) for f in report.failed} == {
        (Kind.POST, refused.pk, True),
        (Kind.COMMENT, held.pk, False),
    }
    [held_back] = [f for f in report.failed if f.entity.kind is Kind.COMMENT]
    assert held_back.error == f"held back: post {refused.pk} is not on the target"
    state = state_of(refused)
    assert (state.attempts, state.create_unconfirmed, state.parked_at) == (1, False, None)
    assert 'HTTP 400 Bad Request (application/json): {"error":"bad title"}' in state.last_error
    assert pending_count() == 2  # the refused post's and the held comment's

    fake_target.reset_log()
    report = sync()

    assert report.ok
    assert writes(fake_target) == [("POST", "/posts"), ("POST", "/comments")]
    assert target_state(fake_target) == expected_target()
    assert pending_count() == 0
    assert delivered(refused) and delivered(held)


def test_a_refused_create_that_is_deleted_again_is_forgotten(fake_target, make_post, sync):
    post = make_post()
    fake_target.fail(400, method="POST", times=1)
    assert not sync().ok
    assert state_of(post).attempts == 1
    post_pk = post.pk
    post.delete()
    fake_target.reset_log()

    report = sync()

    assert report.ok and fake_target.calls() == []
    assert pending_count() == 0
    assert not EntitySyncState.objects.filter(entity_pk=post_pk).exists()


# --- Parking: an entity that fails run after run is skipped until it changes ---------------------


def test_an_entity_refused_run_after_run_is_parked_until_it_changes_again(fake_target, seed, sync):
    [stuck, fine], _ = seed(2)
    stuck.title = "rejected"
    stuck.save()
    refuse = fake_target.fail(400, method="PUT", path=f"/posts/{stuck.pk}")

    for attempt in (1, 2):
        fine.title = f"fine {attempt}"
        fine.save()
        report = sync(max_attempts=2)
        assert [f.entity.pk for f in report.failed] == [stuck.pk]
        assert state_of(stuck).attempts == attempt
        assert target_state(fake_target)["posts"][1] == post_record(fine)
    assert state_of(stuck).parked_at is not None

    fake_target.reset_log()
    report = sync(max_attempts=2)

    assert fake_target.calls() == []  # parked: not sent again
    assert [(f.entity.pk, f.error) for f in report.failed] == [
        (stuck.pk, "parked after repeated failures")
    ]
    assert pending_count() == 1

    fake_target.faults.remove(refuse)
    stuck.title = "fixed"
    stuck.save()
    report = sync(max_attempts=2)

    assert report.ok
    assert writes(fake_target) == [("PUT", f"/posts/{stuck.pk}")]
    assert fake_target.calls()[0].body["title"] == "fixed"
    assert delivered(stuck) and state_of(stuck).attempts == 0
    assert pending_count() == 0


def test_an_entity_answered_5xx_run_after_run_is_parked_while_others_get_through(
    fake_target, seed, sync
):
    [stuck, fine], _ = seed(2)
    fake_target.fail(500, method="PUT", path=f"/posts/{stuck.pk}")
    for attempt in (1, 2):
        stuck.title = fine.title = f"edit {attempt}"
        stuck.save()
        fine.save()
        report = sync(max_attempts=2)
        assert [f.entity.pk for f in report.failed] == [stuck.pk]
        assert state_of(stuck).attempts == attempt
    assert state_of(stuck).parked_at is not None

    fake_target.reset_log()
    report = sync(max_attempts=2)

    assert fake_target.calls() == []
    assert [f.error for f in report.failed] == ["parked after repeated failures"]


def test_a_target_answering_5xx_to_everything_parks_nothing(fake_target, seed, sync):
    posts, _ = seed(3)
    fake_target.fail(503)
    for _ in range(3):
        for post in posts:
            post.title = "edited"
            post.save()
        assert not sync(max_attempts=1).ok

    assert not EntitySyncState.objects.filter(parked_at__isnull=False).exists()
    assert not EntitySyncState.objects.filter(attempts__gt=0).exists()


def test_new_comments_of_a_parked_new_post_are_held_back(
    fake_target, make_post, make_comment, sync
):
    post = make_post()
    comment = make_comment(post)
    fake_target.fail(400, method="POST", path="/posts")
    sync(max_attempts=1)
    assert state_of(post).parked_at is not None
    fake_target.reset_log()

    report = sync(max_attempts=1)

    assert fake_target.calls() == []
    assert {(f.entity.kind, f.entity.pk) for f in report.failed} == {
        (Kind.POST, post.pk),
        (Kind.COMMENT, comment.pk),
    }
    assert pending_count() == 2


def test_a_held_back_comment_is_not_flagged_and_costs_no_call_when_deleted(
    fake_target, make_post, make_comment, sync
):
    post = make_post()
    comment = make_comment(post)
    fake_target.fail(400, method="POST", path="/posts", times=1)
    sync()
    assert state_of(comment) is None or not state_of(comment).create_unconfirmed
    post.delete()
    fake_target.reset_log()

    assert sync().ok

    assert fake_target.calls() == []
    assert pending_count() == 0


# --- A run that stops early ----------------------------------------------------------------------


def test_an_unreachable_target_stops_the_run_early_and_marks_nothing(make_post, sync):
    posts = [make_post() for _ in range(CIRCUIT_BREAKER_THRESHOLD + 15)]
    url = f"http://127.0.0.1:{free_port()}"

    with TargetApiClient(base_url=url, retries=1, backoff_factor=0.01, backoff_max=0.01) as client:
        started = time.monotonic()
        report = sync(client=client)

    assert time.monotonic() - started < 5
    assert report.stopped_early == (
        f"stopped after {CIRCUIT_BREAKER_THRESHOLD} calls in a row found the target unreachable"
    )
    assert not report.ok and report.calls_made == 0
    assert len(report.failed) == len(posts)
    assert sum("not sent: stopped after 10 calls" in f.error for f in report.failed) == 15
    assert pending_count() == len(posts)
    assert not EntitySyncState.objects.filter(attempts__gt=0).exists()
    run = SyncRun.objects.get(pk=report.run_id)
    assert run.status == "partial"
    assert run.error_summary.startswith("stopped after 10 calls in a row")
    assert report.summary().endswith(
        "; stopped after 10 calls in a row found the target unreachable"
    )


def test_the_next_run_after_an_unreachable_one_delivers_everything_once(
    fake_target, make_post, make_comment, sync
):
    for _ in range(12):
        make_comment(make_post())
    url = f"http://127.0.0.1:{free_port()}"
    with TargetApiClient(base_url=url, retries=0, backoff_factor=0.01) as client:
        sync(client=client)

    report = sync()

    assert report.ok
    assert target_state(fake_target) == expected_target()
    assert len(fake_target.calls("POST")) == 24
    assert pending_count() == 0
    assert not EntitySyncState.objects.filter(create_unconfirmed=True).exists()
    assert remote_ids(Kind.POST) == {pk: pk for pk in Post.objects.values_list("pk", flat=True)}


def test_a_run_starts_no_call_once_its_time_budget_is_used_up(fake_target, edited_posts, sync):
    edited_posts(30)
    fake_target.latency = 0.1

    report = sync(time_budget=0.5)

    assert report.stopped_early == "stopped when its time budget of 0.5 s was used up"
    sent = len(fake_target.calls())
    assert 2 <= sent <= 8
    assert pending_count() == 30 - sent
    assert report.calls_made == sent
    fake_target.latency = 0
    assert sync().ok
    assert target_state(fake_target) == expected_target()


def test_a_run_against_a_target_that_drips_its_answers_ends_within_its_budget_and_one_timeout(
    fake_target, edited_posts, sync
):
    edited_posts(10)
    fake_target.drip(1, every=0.05, method="PUT")  # each answer takes about 8 s
    client = TargetApiClient(
        base_url=fake_target.url, timeout=0.5, retries=2, backoff_factor=0.01, backoff_max=0.02
    )

    started = time.monotonic()
    with client:
        report = sync(client=client, concurrency=2, time_budget=0.3)
    took = time.monotonic() - started

    assert took < 0.3 + 0.5 + 0.5
    assert report.stopped_early == "stopped when its time budget of 0.3 s was used up"
    assert len(fake_target.calls("PUT")) == 2  # the two under way, neither tried again
    assert pending_count() == 10
    fake_target.clear_faults()
    assert sync().ok
    assert target_state(fake_target) == expected_target()
