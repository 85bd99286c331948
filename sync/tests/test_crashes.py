"""A run that dies or loses its lock, and one run at a time: kill -9 mid-run, two runs at once,
a lock lost under a run, changes logged while a run sends.

Most of these tests commit (transaction=True) so that other processes and threads see the rows.
The subprocesses run `manage.py` with the interpreter of the suite against the test database.
"""

import signal
import subprocess
import sys

import pytest
from django.conf import settings
from django.db import connection

from news.models import Comment, Post
from sync.errors import SyncLocked
from sync.locking import exclusive_run
from sync.models import EntitySyncState, ModelEvent
from testing.background import InBackground
from testing.commands import run_command
from testing.processes import manage_env, start_manage
from testing.run_lock import lose_the_run_lock, run_lock_held_elsewhere
from testing.sync import (
    expected_target,
    make_workload,
    pending_count,
    target_state,
    with_user,
    writes,
)
from testing.waiting import wait_for

pytestmark = pytest.mark.timeout(60)

# pytest-django keeps the SQLite test database in memory, out of reach of another process.
needs_shared_database = pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="a subprocess cannot see the in-memory SQLite test database; runs on PostgreSQL",
)


HOLD_THE_LOCK = """
import sys
import django
django.setup()
from sync.locking import exclusive_run
with exclusive_run():
    print("locked", flush=True)
    sys.stdin.read()
"""


def sync_env() -> dict[str, str]:
    """A sync subprocess's settings: this session's lock file, and retries that give up fast."""
    return {
        "SYNC_LOCK_FILE": settings.SYNC_LOCK_FILE,
        "SYNC_RETRIES": "1",
        "SYNC_BACKOFF_FACTOR": "0.01",
        "SYNC_BACKOFF_MAX": "0.02",
    }


def start_sync(url: str, *args: str) -> subprocess.Popen:
    return start_manage("sync_changes", "--url", url, "--max-rps", "0", *args, **sync_env())


def hold_the_lock() -> subprocess.Popen:
    """A process that holds the run lock until its stdin is closed."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_THE_LOCK],
        cwd=settings.BASE_DIR,
        env=manage_env(**sync_env()),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline() == "locked\n"
    return holder


def lock_is_free() -> bool:
    try:
        with exclusive_run():
            return True
    except SyncLocked:
        return False


# --- A run killed at any moment is finished by the next ------------------------------------------


def kill_and_settle(killed: subprocess.Popen, fake_target) -> int:
    """kill -9 the run, wait for its calls in flight and its lock to end, and make the target
    fast again; returns the writes the target had received at the kill."""
    killed.send_signal(signal.SIGKILL)
    killed.wait(5)
    assert killed.returncode == -signal.SIGKILL
    sent = len(writes(fake_target))
    wait_for(lambda: fake_target.in_flight == 0, what="calls in flight at the kill")
    # The lock died with the process (PostgreSQL notices the closed connection at once).
    wait_for(lock_is_free, timeout=5, what="the lock to be released")
    fake_target.latency = 0
    return sent


@needs_shared_database
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("calls_before_kill", [1, 12, 35])
@pytest.mark.parametrize("assign_ids", [False, True], ids=["keeps-ids", "assigns-ids"])
def test_a_run_killed_at_any_moment_is_finished_by_the_next_without_duplicates(
    fake_target, seed, make_post, make_comment, sync, calls_before_kill, assign_ids
):
    calls_needed = make_workload(seed, make_post, make_comment)
    fake_target.assign_ids = assign_ids
    fake_target.latency = 0.02
    killed = start_sync(fake_target.url, "--concurrency", "4", "--batch-size", "20")

    wait_for(lambda: len(writes(fake_target)) >= calls_before_kill, what="the first calls")
    sent_before_kill = kill_and_settle(killed, fake_target)
    assert sent_before_kill < calls_needed, "the run finished before it was killed"

    report = sync(concurrency=4)

    assert report.ok, report.failed
    assert target_state(fake_target) == expected_target()
    assert pending_count() == 0
    created = [(r.path, r.body["id"]) for r in fake_target.calls("POST") if r.status == 201]
    assert len(created) == len(set(created)), "an entity was created twice"
    assert [r for r in fake_target.calls() if r.status == 500] == []
    assert not EntitySyncState.objects.filter(create_unconfirmed=True).exists()
    # Nothing is sent twice beyond what the killed run may have left unconfirmed.
    assert len(writes(fake_target)) <= calls_needed + sent_before_kill


@needs_shared_database
@pytest.mark.django_db(transaction=True)
def test_a_run_killed_against_a_target_behind_a_password_is_finished_by_the_next(
    fake_target, seed, make_post, make_comment
):
    calls_needed = make_workload(seed, make_post, make_comment)
    fake_target.credentials = ("sync", "pass word")
    url = with_user(fake_target.url, "sync:pass%20word")
    fake_target.latency = 0.02
    killed = start_sync(url, "--concurrency", "4", "--batch-size", "20")

    wait_for(lambda: len(writes(fake_target)) >= 12, what="the first calls")
    sent_before_kill = kill_and_settle(killed, fake_target)
    assert sent_before_kill < calls_needed, "the run finished before it was killed"
    code, output, error = run_command("sync_changes", "--url", url, "--max-rps", "0")

    assert (code, error) == (0, ""), output
    assert target_state(fake_target) == expected_target()
    assert pending_count() == 0
    assert [r for r in fake_target.calls() if r.status == 401] == []
    created = [(r.path, r.body["id"]) for r in fake_target.calls("POST") if r.status == 201]
    assert len(created) == len(set(created)), "an entity was created twice"


@needs_shared_database
@pytest.mark.django_db(transaction=True)
def test_a_run_killed_with_creates_flagged_ahead_of_their_calls_leaves_no_duplicate(
    fake_target, make_post, sync
):
    posts = [make_post(title=f"new {n}") for n in range(60)]
    fake_target.latency = 0.05
    # Batches of 8, 16, 20 and 16: the next is flagged while the calls before it are under way.
    killed = start_sync(fake_target.url, "--concurrency", "2", "--batch-size", "20")

    def flagged_ahead() -> bool:
        sent = {r.body["id"] for r in fake_target.calls("POST")}
        flagged = EntitySyncState.objects.filter(create_unconfirmed=True)
        return bool(sent) and len(set(flagged.values_list("entity_pk", flat=True)) - sent) >= 10

    wait_for(flagged_ahead, what="creates flagged ahead of their calls")
    kill_and_settle(killed, fake_target)

    report = sync(concurrency=4)

    assert report.ok, report.failed
    assert target_state(fake_target) == expected_target()
    created = [r.body["id"] for r in fake_target.calls("POST") if r.status == 201]
    assert sorted(created) == [post.pk for post in posts], "a post missing or created twice"
    assert pending_count() == 0
    assert not EntitySyncState.objects.filter(create_unconfirmed=True).exists()


@needs_shared_database
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("calls_before_kill", [1, 7, 19])
def test_a_full_run_killed_at_any_moment_then_edits_and_deletes_converge_without_duplicates(
    fake_target, make_post, make_comment, sync, calls_before_kill
):
    posts = [make_post(title=f"post {n}") for n in range(12)]
    comments = [make_comment(post, body=f"comment {n}") for n, post in enumerate(posts)]
    # Slow enough that the kill lands before the last calls even on a busy machine: after call 19
    # there are 5 left, 2 at a time.
    fake_target.latency = 0.15
    killed = start_sync(fake_target.url, "--full", "--concurrency", "2")

    wait_for(lambda: len(writes(fake_target)) >= calls_before_kill, what="the first calls")
    killed.send_signal(signal.SIGKILL)
    killed.wait(5)
    assert len(writes(fake_target)) < len(posts) + len(comments), "finished before the kill"
    wait_for(lambda: fake_target.in_flight == 0, what="calls in flight at the kill")
    wait_for(lock_is_free, timeout=5, what="the lock to be released")
    fake_target.latency = 0
    for post in posts[:4]:
        post.title = "edited after the kill"
        post.save()
    for post in posts[4:8]:
        post.delete()  # and its comment
    for comment in comments[8:10]:
        comment.body = "edited after the kill"
        comment.save()

    report = sync(concurrency=4)

    assert report.ok, report.failed
    assert target_state(fake_target) == expected_target()
    assert pending_count() == 0
    assert not EntitySyncState.objects.filter(create_unconfirmed=True).exists()
    created = [(r.path, r.body["id"]) for r in fake_target.calls("POST") if r.status == 201]
    assert len(created) == len(set(created)), "an entity was created twice"
    fake_target.reset_log()
    assert sync(full=True).ok
    assert writes(fake_target) == [], "the target drifted without anyone noticing"


# --- One run at a time ---------------------------------------------------------------------------


@needs_shared_database
@pytest.mark.django_db(transaction=True)
def test_two_runs_started_together_the_second_exits_75(fake_target, edited_posts, settings):
    edited_posts(20, title="changed")
    fake_target.latency = 0.5  # keeps the first run busy for 10 s, until told to hurry
    first = start_sync(fake_target.url, "--concurrency", "1", "--timeout", "5")
    wait_for(lambda: len(fake_target.calls()) >= 1, what="the first run's first call")

    second = start_sync(fake_target.url)
    second_out, second_err = second.communicate(timeout=30)
    in_process = run_command("sync_changes", "--url", fake_target.url, "--max-rps", "0")
    assert first.poll() is None, "the first run ended before the others tried"
    fake_target.latency = 0
    first_out, first_err = first.communicate(timeout=30)

    assert second.returncode == 75
    assert second_out == ""
    assert second_err == (
        "CommandError: another sync_changes run holds the lock; try again later\n"
    )
    assert in_process == (75, "", "another sync_changes run holds the lock; try again later")
    assert (first.returncode, first_err) == (0, "")
    assert first_out.startswith("Synced 20 entities with 20 calls (0 created, 20 updated, 0 ")
    assert len(fake_target.calls()) == 20
    assert pending_count() == 0


@pytest.mark.django_db(transaction=True)
def test_a_run_exits_75_while_another_process_holds_the_lock(fake_target, make_post, tmp_path):
    make_post()
    # On SQLite the suite's database is in memory: the other process gets a database file of
    # its own (the lock is refused before any table is read).
    elsewhere = {}
    if connection.vendor == "sqlite":
        (tmp_path / "db.sqlite3").touch()
        elsewhere["DATABASE_URL"] = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    holder = hold_the_lock()
    try:
        code, output, error = run_command(
            "sync_changes", "--url", fake_target.url, "--max-rps", "0"
        )
        other = start_manage(
            "sync_changes", "--url", fake_target.url, "--max-rps", "0", **sync_env(), **elsewhere
        )
        other_out, other_err = other.communicate(timeout=30)
    finally:
        holder.stdin.close()
        holder.wait(10)

    assert (code, output) == (75, "")
    assert error.startswith("another sync_changes run holds the lock")
    assert other.returncode == 75, other_err
    assert other_out == ""
    assert len(other_err.splitlines()) == 1
    assert other_err.startswith("CommandError: another sync_changes run holds the lock")
    assert fake_target.calls() == []
    assert pending_count() == 1

    assert run_command("sync_changes", "--url", fake_target.url, "--max-rps", "0")[0] == 0
    assert pending_count() == 0


@pytest.mark.django_db(transaction=True)
def test_a_killed_run_leaves_no_stale_lock(fake_target):
    holder = hold_the_lock()
    assert not lock_is_free()

    holder.kill()
    holder.wait(5)

    wait_for(lock_is_free, timeout=5, what="the lock to be released")


@pytest.mark.django_db(transaction=True)
def test_the_lock_admits_one_thread_at_a_time():
    outcomes: list[str] = []

    with run_lock_held_elsewhere():
        with (
            pytest.raises(SyncLocked, match="another sync_changes run holds the lock"),
            exclusive_run(),
        ):
            outcomes.append("entered while held")
        with exclusive_run("another_job"):
            outcomes.append("another lock name is independent")

    with exclusive_run():
        outcomes.append("entered after release")
    assert outcomes == ["another lock name is independent", "entered after release"]


@pytest.mark.django_db(transaction=True)
def test_a_run_that_loses_its_lock_stops_sending_at_once_and_says_so(
    fake_target, edited_posts, sync
):
    edited_posts(40)
    fake_target.latency = 0.05

    runner = InBackground(lambda: sync(concurrency=2))
    wait_for(lambda: len(fake_target.calls()) >= 5)
    lose_the_run_lock()
    sent_when_lost = len(fake_target.calls())
    report = runner.join(30)

    assert report.stopped_early == (
        "stopped: it lost its run lock (the database session that held it ended)"
    )
    # Only what was under way (two calls at a time) reaches the target after the loss.
    assert len(fake_target.calls()) <= sent_when_lost + 2
    assert not report.ok
    fake_target.latency = 0
    assert sync().ok
    assert target_state(fake_target) == expected_target()
    assert pending_count() == 0


# --- Changes logged during a run are left for the next run ---------------------------------------


@pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="SQLite's shared in-memory test database locks whole tables between threads: a write "
    "made while the run reads the table fails at once (database table is locked)",
)
@pytest.mark.django_db(transaction=True)
def test_changes_logged_during_a_run_are_left_for_the_next_run(
    fake_target, edited_posts, make_post, sync
):
    posts = edited_posts(6, title="changed")
    before = set(ModelEvent.objects.pending().values_list("id", flat=True))
    fake_target.latency = 0.05

    runner = InBackground(lambda: sync(concurrency=1))
    wait_for(lambda: len(fake_target.calls()) >= 2, what="the run to be under way")
    sent = posts[0]  # already sent by this run, changed again
    sent.title = "changed during the run"
    sent.save()
    waiting = posts[-1]  # not sent yet, changed again
    waiting.body = "changed during the run"
    waiting.save()
    new = make_post(title="created during the run")
    during = set(ModelEvent.objects.pending().values_list("id", flat=True)) - before
    first = runner.join(20)

    assert first.ok
    assert first.calls_made == 6
    assert set(ModelEvent.objects.pending().values_list("id", flat=True)) == during
    assert len(during) == 3
    # Its row may have been read before or after that change (batches are read as calls go).
    waiting_is_current = fake_target.posts[waiting.pk]["body"] == "changed during the run"

    fake_target.reset_log()
    fake_target.latency = 0
    report = sync()

    assert report.ok
    assert sorted(writes(fake_target)) == sorted(
        [("POST", "/posts"), ("PUT", f"/posts/{sent.pk}")]
        + ([] if waiting_is_current else [("PUT", f"/posts/{waiting.pk}")])
    )
    assert report.entities_unchanged == (1 if waiting_is_current else 0)
    assert target_state(fake_target) == expected_target()
    assert Post.objects.get(pk=new.pk).title == "created during the run"
    assert pending_count() == 0
    assert not Comment.objects.exists()


@needs_shared_database
@pytest.mark.django_db(transaction=True)
def test_a_run_killed_after_the_put_that_makes_a_found_copy_ours_landed_leaves_one_copy(
    fake_target, make_post, sync
):
    fake_target.assign_ids = True
    post = make_post(title="as first sent")
    fake_target.drop(method="POST", times=1, after_processing=True)
    fake_target.fail(503, method="GET")
    assert not sync().ok  # the create's outcome is unknown
    post.title = "edited once"
    post.save()
    fake_target.clear_faults()
    fake_target.stall(2, method="PUT", after_processing=True)
    killed = start_sync(fake_target.url)
    wait_for(
        lambda: [p["title"] for p in fake_target.state()["posts"]] == ["edited once"],
        what="the PUT that makes the copy ours, applied",
    )
    kill_and_settle(killed, fake_target)
    post.title = "edited twice"
    post.save()
    fake_target.clear_faults()

    report = sync()

    assert report.ok, report.failed
    assert [p["title"] for p in fake_target.state()["posts"]] == ["edited twice"]
    assert target_state(fake_target) == expected_target()
    assert pending_count() == 0
