"""One-shot `sync_changes` and `import_initial_data` stopped by SIGTERM or SIGINT, as real
processes: no new call starts, the calls under way finish and are recorded, one line, and the
shell's exit status (130 for SIGINT, 143 for SIGTERM).

PostgreSQL only: a subprocess cannot see the in-memory SQLite test database.
"""

from __future__ import annotations

import signal
import subprocess
import time

import pytest
from django.db import transaction

from news.models import Comment, Post
from sync.models import EntitySyncState, ModelEvent, SyncRun
from testing.processes import run_manage, start_manage
from testing.races import raw_connection
from testing.sync import expected_target, pending_count, target_state
from testing.waiting import wait_for

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(90),
]

SIGNALS = pytest.mark.parametrize(
    ("sig", "status"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)], ids=["SIGTERM", "SIGINT"]
)
FAST_RETRIES = {"SYNC_RETRIES": "1", "SYNC_BACKOFF_FACTOR": "0.01", "SYNC_BACKOFF_MAX": "0.02"}


def start_sync(url: str, *args: str) -> subprocess.Popen:
    options = ("--url", url, "--max-rps", "0", "--concurrency", "2", *args)
    return start_manage("sync_changes", *options, **FAST_RETRIES)


def stop(process: subprocess.Popen, sig: signal.Signals) -> tuple[str, str, float]:
    """Send `sig`; what the process printed, and how long it took to end after it."""
    sent_at = time.monotonic()
    process.send_signal(sig)
    out, err = process.communicate(timeout=30)
    return out, err, time.monotonic() - sent_at


# --- sync_changes --------------------------------------------------------------------------------


@SIGNALS
def test_a_signal_lets_the_calls_under_way_finish_records_them_and_says_so_in_one_line(
    fake_target, make_post, sig, status
):
    posts = [make_post(title=f"new {n}") for n in range(12)]
    fake_target.stall(1.0, method="POST")
    process = start_sync(fake_target.url, "--timeout", "5")
    wait_for(lambda: fake_target.in_flight == 2, timeout=15, what="two POSTs under way")
    signalled_at = time.time()

    out, err, took = stop(process, sig)

    assert process.returncode == status, err
    assert out == ""
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"CommandError: Stopped ({sig.name} received) after ")
    assert err.rstrip().endswith(
        "2 entities synced with 2 calls (2 created, 0 updated, 0 deleted); the calls under way "
        "were recorded, the rest stays pending for the next run"
    )
    assert took < 5  # the two calls under way, then nothing more
    assert [r for r in fake_target.calls() if r.received_at > signalled_at] == []
    delivered = set(EntitySyncState.objects.exclude(remote_id=None).values_list("entity_pk"))
    assert len(delivered) == 2 and len(fake_target.posts) == 2
    assert pending_count() == 10
    # The creates made ready (flagged) but never sent are not left for a lookup.
    assert not EntitySyncState.objects.filter(create_unconfirmed=True).exists()
    run = SyncRun.objects.get()
    assert (run.status, run.calls_created) == (SyncRun.Status.PARTIAL, 2)
    assert run.finished_at is not None
    assert run.error_summary.splitlines()[0] == f"stopped: {sig.name} received"
    shown = run_manage("sync_status")
    assert f"incremental partial, stopped: {sig.name} received: 2 synced" in shown.stdout

    fake_target.clear_faults()
    fake_target.reset_log()
    assert run_manage("sync_changes", "--url", fake_target.url, "--max-rps", "0").returncode == 0
    assert [r.method for r in fake_target.calls()] == ["POST"] * 10  # no lookup needed
    assert target_state(fake_target) == expected_target()
    assert len(posts) == Post.objects.count()


def test_sigterm_ends_a_run_against_a_target_that_drips_its_answers_within_one_timeout(
    fake_target, seed_rows
):
    fake_target.drip(1, every=0.1, method="PUT")  # each answer takes about 20 s
    process = start_sync(fake_target.url, "--timeout", "2", "--time-budget", "0")
    wait_for(lambda: len(fake_target.calls("PUT")) == 2, timeout=15, what="two PUTs under way")

    out, err, took = stop(process, signal.SIGTERM)

    assert process.returncode == 143, err
    assert took < 2 + 1
    assert err.startswith("CommandError: Stopped (SIGTERM received) after ")
    assert len(fake_target.calls("PUT")) == 2  # not tried again
    assert pending_count() == 8, err


def test_a_signal_while_a_full_run_reads_the_target_stops_it_before_any_call(
    fake_target, seed_rows
):
    fake_target.stall(1.0, method="GET", path="/posts")
    process = start_sync(fake_target.url, "--full", "--timeout", "5")
    wait_for(lambda: fake_target.calls("GET"), timeout=15, what="the read of the posts")

    out, err, took = stop(process, signal.SIGINT)

    assert process.returncode == 130, err
    assert (out, err) == (
        "",
        "CommandError: Stopped (SIGINT received) before any call; everything stays pending\n",
    )
    assert took < 5
    assert [r.path for r in fake_target.calls()] == ["/posts"]  # the comments never read
    assert pending_count() == 8


@pytest.fixture
def seed_rows(seed):
    """Eight posts on the target, each edited since: eight PUTs pending."""
    posts, _ = seed(8)
    with transaction.atomic():
        for post in posts:
            post.title = "edited"
            post.save()
    return posts


# --- import_initial_data -------------------------------------------------------------------------


@SIGNALS
def test_a_signal_while_the_import_reads_the_target_stops_it_with_nothing_written(
    fake_target, sig, status
):
    fake_target.load_generated(20)
    fake_target.drip(64, every=0.1, path="/comments")  # 100 comments: about 3 minutes
    process = start_manage("import_initial_data", "--url", fake_target.url, "--timeout", "2")
    wait_for(lambda: fake_target.calls(path_prefix="/comments"), timeout=15, what="the comments")

    out, err, took = stop(process, sig)

    assert process.returncode == status, err
    assert out == ""
    assert err == f"CommandError: Stopped ({sig.name} received); nothing was imported.\n"
    assert took < 2 + 1
    assert len(fake_target.calls(path_prefix="/comments")) == 1  # not tried again
    assert (Post.objects.count(), Comment.objects.count()) == (0, 0)


def test_a_signal_while_the_import_writes_rolls_its_transaction_back(fake_target):
    fake_target.load_generated(20)
    # A write of ours holds the tables: the import waits for them inside its transaction.
    with raw_connection() as blocker, raw_connection() as monitor:
        monitor.autocommit = True
        blocker.execute("LOCK TABLE news_post IN ROW EXCLUSIVE MODE")
        process = start_manage("import_initial_data", "--url", fake_target.url)
        wait_for(
            lambda: monitor.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            ).fetchone()[0],
            timeout=15,
            what="the import waiting for its table lock",
        )
        process.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        blocker.rollback()
        out, err = process.communicate(timeout=30)

    assert process.returncode == 143, err
    assert (out, err) == ("", "CommandError: Stopped (SIGTERM received); nothing was imported.\n")
    assert (Post.objects.count(), Comment.objects.count()) == (0, 0)
    assert not EntitySyncState.objects.exists()
    assert not ModelEvent.objects.exists()
    assert run_manage("import_initial_data", "--url", fake_target.url).returncode == 0
    assert (Post.objects.count(), Comment.objects.count()) == (20, 100)
