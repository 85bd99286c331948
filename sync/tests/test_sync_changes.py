"""manage.py sync_changes: output lines, exit codes, flags, --dry-run and --full."""

import re
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import StringIO

import pytest
from django.core.management import ManagementUtility, call_command
from django.core.management.base import CommandError
from django.db import connection

from news.models import Comment, Post
from sync.locking import exclusive_run
from sync.models import EntitySyncState, SyncRun
from testing import commands
from testing.ports import free_port
from testing.run_lock import run_lock_held_elsewhere
from testing.sync import (
    comment_record,
    expected_target,
    pending_count,
    post_record,
    target_state,
    with_user,
    writes,
)

pytestmark = [pytest.mark.django_db, pytest.mark.timeout(30)]

SUMMARY = re.compile(
    r"^(?:Synced|Incomplete: synced) (\d+) entities with (\d+) calls "
    r"\((\d+) created, (\d+) updated, (\d+) deleted\)(?: and \d+ failed calls?)?, "
    r"(\d+) needing no call; (\d+) failed in \d+\.\d s(; .*)?$"
)


@pytest.fixture(autouse=True)
def _fast_retries(settings):
    settings.SYNC_RETRIES = 2
    settings.SYNC_BACKOFF_FACTOR = 0.01
    settings.SYNC_BACKOFF_MAX = 0.02


@dataclass
class Result:
    code: int
    output: str
    error: str = ""

    @property
    def lines(self) -> list[str]:
        return self.output.splitlines()

    @property
    def failed(self) -> list[str]:
        """Its FAILED lines, one per failed call."""
        return [line for line in self.lines if line.startswith("FAILED")]

    def summary(self) -> tuple[int, ...]:
        """synced, calls, created, updated, deleted, needing no call, failed: the last line's."""
        match = SUMMARY.match(self.lines[-1])
        assert match, f"not a summary line: {self.lines[-1]!r}"
        return tuple(int(group) for group in match.groups()[:7])


def run_command(*args: str) -> Result:
    return Result(*commands.run_command("sync_changes", *args))


@pytest.fixture
def sync_command(fake_target):
    """The command against the fake target, without a rate limit, with a short timeout."""

    def run(*args: str) -> Result:
        return run_command("--url", fake_target.url, "--max-rps", "0", "--timeout", "2", *args)

    return run


@pytest.fixture
def changes(seed, make_post):
    """One pending create, update and delete of a post."""
    [updated, deleted], _ = seed(2)
    created = make_post(title="new")
    updated.title = "changed"
    updated.save()
    deleted.delete()
    return created, updated


# --- Exit 0 and the summary line -----------------------------------------------------------------


def test_delivers_everything_prints_one_summary_line_and_exits_0(
    fake_target, changes, sync_command
):
    result = sync_command()

    assert result.code == 0
    assert len(result.lines) == 1
    assert result.summary() == (3, 3, 1, 1, 1, 0, 0)
    assert target_state(fake_target) == expected_target()
    assert pending_count() == 0
    run = SyncRun.objects.get()
    assert (run.mode, run.status, run.entities_synced, run.entities_failed) == (
        "incremental",
        "succeeded",
        3,
        0,
    )
    assert (run.calls_created, run.calls_updated, run.calls_deleted) == (1, 1, 1)


def test_nothing_pending_sends_nothing_and_still_records_the_run(fake_target, sync_command):
    result = sync_command()

    assert result.code == 0
    [line] = result.lines  # its time is the machine's: 0.0 s, or more on a busy one
    assert re.fullmatch(
        r"Synced 0 entities with 0 calls \(0 created, 0 updated, 0 deleted\), 0 needing no call; "
        r"0 failed in \d+\.\d s",
        line,
    ), line
    assert fake_target.calls() == []
    assert SyncRun.objects.get().status == "succeeded"


def test_the_url_defaults_to_the_setting(fake_target, changes, settings):
    settings.TARGET_URL = fake_target.url

    result = run_command("--max-rps", "0")

    assert result.code == 0
    assert len(writes(fake_target)) == 3


# --- Exit 1: failures named one per line ---------------------------------------------------------


def test_failed_entities_are_named_one_line_each_and_exit_1(fake_target, seed, sync_command):
    [first, second, fine], _ = seed(3)
    for post in (first, second, fine):
        post.title = "changed"
        post.save()
    fake_target.fail(400, method="PUT", path=f"/posts/{first.pk}", body={"error": "no"})
    fake_target.fail(422, method="PUT", path=f"/posts/{second.pk}", body={"error": "nope"})

    result = sync_command("--concurrency", "1")

    assert result.code == 1
    assert result.lines[:-1] == [
        f"FAILED PUT post {first.pk}: PUT {fake_target.url}/posts/{first.pk}: "
        f'HTTP 400 Bad Request (application/json): {{"error":"no"}}',
        f"FAILED PUT post {second.pk}: PUT {fake_target.url}/posts/{second.pk}: "
        f'HTTP 422 Unprocessable Entity (application/json): {{"error":"nope"}}',
    ]
    assert result.summary() == (1, 1, 0, 1, 0, 0, 2)
    # The two PUTs refused reached the target too: the line counts them apart.
    assert result.lines[-1].startswith(
        "Incomplete: synced 1 entities with 1 calls (0 created, 1 updated, 0 deleted) "
        "and 2 failed calls, 0 needing no call; 2 failed in "
    )
    assert result.error == (
        "2 entities were not delivered; they stay pending for the next run (see sync_status)"
    )
    assert pending_count() == 2
    run = SyncRun.objects.get()
    assert (run.status, run.entities_synced, run.entities_failed) == ("partial", 1, 2)
    assert run.error_summary.splitlines() == [line[len("FAILED ") :] for line in result.lines[:-1]]


def test_a_transient_failure_exits_1_and_the_next_run_delivers_it(
    fake_target, seed, sync_command, settings
):
    settings.SYNC_RETRIES = 1
    [post], _ = seed(1)
    post.title = "changed"
    post.save()
    fake_target.fail(503, method="PUT", times=2)

    first = sync_command()
    second = sync_command()

    assert first.code == 1
    assert first.lines[0].startswith(f"FAILED PUT post {post.pk}: ")
    assert "HTTP 503 Service Unavailable" in first.lines[0]
    assert second.code == 0
    assert second.summary() == (1, 1, 0, 1, 0, 0, 0)
    assert target_state(fake_target) == expected_target()


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_a_page_that_is_not_json_answering_a_write_is_no_delivery(
    fake_target, seed, make_post, sync_command, method
):
    """A proxy's or a wrong host's default page, 200 and HTML, is not the target's answer: the
    write may not have been carried out, so it stays pending, and the run says so."""
    [post], _ = seed(1)
    if method == "POST":
        make_post(title="new")
    elif method == "PUT":
        post.title = "changed"
        post.save()
    else:
        post.delete()
    page = "<html><body>Welcome to nginx!</body></html>"
    fake_target.answer(200, body=page, content_type="text/html", method=method, times=1)

    first = sync_command()
    second = sync_command()

    assert first.code == 1, first.lines
    assert first.lines[-1].startswith("Incomplete: ")
    if method == "POST":  # looked for, as any create answered without its record
        assert "was answered without a usable id" in first.lines[0], first.lines
    else:
        assert "not a JSON" in first.lines[0] and "Welcome to nginx" in first.lines[0]
    assert second.code == 0, second.lines
    assert target_state(fake_target) == expected_target()
    assert pending_count() == 0


def test_a_full_run_that_fails_an_entity_no_change_waits_for_says_what_sends_it_again(
    fake_target, seed, sync_command
):
    """Only a change waiting makes the next run send it: a record that drifted on the target is
    the next --full run's to repair, and the run says so rather than "the next run"."""
    [post], _ = seed(1)
    fake_target.posts[post.pk]["title"] = "drifted"
    fake_target.fail(422, method="PUT", times=1)

    failed = sync_command("--full")
    after = sync_command()
    repaired = sync_command("--full")

    assert failed.code == 1
    assert failed.error == (
        "1 entities were not delivered; the next --full run sends them again (those with a "
        "change waiting, the next run) (see sync_status)"
    )
    assert after.summary()[1] == 0  # nothing waits: no call
    assert repaired.code == 0
    assert target_state(fake_target) == expected_target()


def test_a_call_that_times_out_is_named_with_the_timeout(fake_target, seed, sync_command):
    [post], _ = seed(1)
    post.title = "changed"
    post.save()
    fake_target.stall(0.5, method="PUT")

    result = run_command(
        "--url", fake_target.url, "--max-rps", "0", "--timeout", "0.1", "--concurrency", "1"
    )

    assert result.code == 1
    assert result.lines[0] == (
        f"FAILED PUT post {post.pk}: PUT {fake_target.url}/posts/{post.pk}: no answer within 0.1 s"
    )
    assert pending_count() == 1


def test_a_parked_entity_is_named_in_the_output(fake_target, seed, sync_command, settings):
    settings.SYNC_MAX_ATTEMPTS = 1
    [post], _ = seed(1)
    post.title = "changed"
    post.save()
    fake_target.fail(400, method="PUT")
    assert sync_command().code == 1
    fake_target.reset_log()

    result = sync_command()

    assert fake_target.calls() == []
    assert result.code == 1
    assert f"FAILED post {post.pk}: parked after repeated failures" in result.lines
    assert result.summary()[-1] == 1
    status = StringIO()
    call_command("sync_status", stdout=status)
    assert (
        f"news_post#{post.pk} PARKED after 1 failed run: PUT {fake_target.url}/posts/"
        f'{post.pk}: HTTP 400 Bad Request (application/json): {{"error":"Bad Request"}}'
    ) in status.getvalue()
    assert "incremental partial: 0 synced, 1 failed" in status.getvalue()


class Terminal(StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_a_progress_bar_is_drawn_and_failures_still_print(
    fake_target, edited_posts, capsys
):
    posts = edited_posts(5, title="changed")
    fake_target.fail(400, method="PUT", path=f"/posts/{posts[0].pk}")
    terminal = Terminal()

    with pytest.raises(CommandError):
        call_command("sync_changes", "--url", fake_target.url, "--max-rps", "0", stdout=terminal)

    printed = capsys.readouterr()
    assert "| 0/5 [" in printed.err  # tqdm's bar, sized to the plan
    assert printed.out.startswith(f"FAILED PUT post {posts[0].pk}: ")
    assert SUMMARY.match(terminal.getvalue())


def test_a_password_in_the_target_url_is_never_shown_nor_kept(make_post):
    make_post()
    url = f"http://sync:s3cret-word@127.0.0.1:{free_port()}"

    result = run_command("--url", url, "--max-rps", "0", "--concurrency", "1")
    full = run_command("--url", url, "--full", "--max-rps", "0")

    assert result.code == 1 and full.code == 1
    shown = result.output + result.error + full.output + full.error
    # The calls' URLs are the target's without the credentials (sent as a header).
    assert f" {url.replace('sync:s3cret-word@', '')}/posts: " in shown and "s3cret" not in shown
    kept = [state.last_error for state in EntitySyncState.objects.all()]
    kept += [run.error_summary for run in SyncRun.objects.all()]
    assert any("127.0.0.1" in text for text in kept) and not any("s3cret" in t for t in kept)


def test_a_user_and_password_in_the_target_url_are_sent_as_basic_authentication(
    changes, make_comment
):
    from fake_target import FakeTarget

    with FakeTarget(credentials=("sync", "p@ss:word")) as target:
        url = with_user(target.url, "sync:p%40ss%3Aword")
        wrong = with_user(target.url, "sync:other")

        refused = run_command("--url", wrong, "--max-rps", "0", "--full")
        full = run_command("--url", url, "--max-rps", "0", "--full")
        make_comment(post=changes[0])
        incremental = run_command("--url", url, "--max-rps", "0")
        verified = run_command("--url", url, "--verify")

    assert refused.code == 1 and "401" in refused.error and "other" not in refused.error
    assert (full.code, incremental.code, verified.code) == (0, 0, 0)
    assert incremental.summary()[:3] == (1, 1, 1)
    assert target_state(target) == expected_target()
    statuses = [request.status for request in target.requests]
    assert statuses.count(401) == 1 and all(s < 400 for s in statuses[1:])


def test_an_unreachable_target_stops_the_run_with_a_clear_line(make_post):
    for _ in range(30):
        make_post()

    result = run_command(
        "--url", f"http://127.0.0.1:{free_port()}", "--max-rps", "0", "--concurrency", "1"
    )

    assert result.code == 1
    assert result.lines[-1].endswith(
        "; stopped after 10 calls in a row found the target unreachable"
    )
    assert result.summary() == (0, 0, 0, 0, 0, 0, 30)
    unreachable = [line for line in result.lines if "connection failed" in line]
    assert len(unreachable) == 10
    assert all(line.startswith("FAILED POST post ") for line in unreachable)
    assert pending_count() == 30
    assert SyncRun.objects.get().status == "partial"


def test_a_full_sync_of_an_unreachable_target_fails_in_one_line(make_post):
    make_post()
    url = f"http://127.0.0.1:{free_port()}"

    result = run_command("--url", url, "--full", "--max-rps", "0")

    assert result.code == 1
    assert result.error.startswith(f"Sync failed: GET {url}/posts: connection failed (")
    assert "\n" not in result.error
    run = SyncRun.objects.get()
    assert (run.mode, run.status) == ("full", "failed")
    assert pending_count() == 1


def test_a_full_run_whose_reads_outlast_its_time_budget_says_so_in_one_line(
    fake_target, changes, sync_command
):
    fake_target.stall(0.5, method="GET", path="/posts")

    result = sync_command("--full", "--time-budget", "0.2")

    assert result.code == 1
    assert result.error == (
        "Sync stopped when its time budget of 0.2 s was used up, before any call; "
        "everything stays pending"
    )
    assert [r.path for r in fake_target.calls()] == ["/posts"]
    assert pending_count() == 3


# --- Exit 2: bad usage ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--url", "ftp://example.com"], "--url must be an http(s) URL, got 'ftp://example.com'"),
        (["--url", ""], "--url must be an http(s) URL, got ''"),  # not TARGET_URL in its place
        (["--url", "localhost:3000"], "--url must be an http(s) URL, got 'localhost:3000'"),
        (["--url", "http://"], "--url must be an http(s) URL, got 'http://'"),
        (["--url", "http://[::1"], "--url must be an http(s) URL, got 'http://[::1'"),
        (
            ["--url", "http://127.0.0.1:abc"],
            "--url must be an http(s) URL, got 'http://127.0.0.1:abc'",
        ),
        (
            ["--url", "http://127.0.0.1:99999"],
            "--url must be an http(s) URL, got 'http://127.0.0.1:99999'",
        ),
        (
            ["--url", "http://127.0.0.1:3000#x"],
            "--url must be a base URL, without a ?query or #fragment, got 'http://127.0.0.1:3000#x'",
        ),
        (
            ["--url", "http://127.0.0.1:3000/?a=1"],
            "--url must be a base URL, without a ?query or #fragment, "
            "got 'http://127.0.0.1:3000/?a=1'",
        ),
        (
            ["--retry-parked", "--older-than", "99999999999d"],
            "--older-than must be at most 36500 days, got '99999999999d'",
        ),
        (
            ["--retry-parked", "--older-than", "999999999d"],
            "--older-than must be at most 36500 days, got '999999999d'",
        ),
        (["--concurrency", "0"], "--concurrency must be at least 1"),
        (["--max-rps", "-1"], "--max-rps must be 0 (unlimited) or more"),
        (["--batch-size", "0"], "--batch-size must be at least 1"),
        (["--timeout", "0"], "--timeout must be more than 0"),
        (["--timeout", "nan"], "--timeout must be a number of seconds up to 86400, got nan"),
        (["--timeout", "inf"], "--timeout must be a number of seconds up to 86400, got inf"),
        (["--timeout", "1e300"], "--timeout must be a number of seconds up to 86400, got 1e+300"),
        (
            ["--time-budget", "nan"],
            "--time-budget must be a number of seconds up to 86400, got nan",
        ),
        (
            ["--time-budget", "1e9"],
            "--time-budget must be a number of seconds up to 86400, got 1e+09",
        ),
        (["--max-rps", "nan"], "--max-rps must be a finite number, got nan"),
        (["--max-rps", "inf"], "--max-rps must be a finite number, got inf"),
    ],
)
def test_bad_usage_exits_2_and_sends_nothing(fake_target, changes, args, message):
    result = run_command("--url", fake_target.url, *args)

    assert (result.code, result.error, result.output) == (2, message, "")
    assert fake_target.calls() == []
    assert pending_count() == 3
    assert not SyncRun.objects.exists()


def test_every_usage_problem_is_named_at_once(fake_target):
    result = run_command("--url", fake_target.url, "--concurrency", "0", "--timeout", "-1")

    assert result.code == 2
    assert result.error == "--concurrency must be at least 1; --timeout must be more than 0"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--concurrency", "many"], "argument --concurrency: invalid int value: 'many'"),
        (["--max-rps"], "argument --max-rps: expected one argument"),
        (["--fast"], "unrecognized arguments: --fast"),
    ],
)
def test_argument_errors_exit_2(capsys, args, message):
    with pytest.raises(SystemExit) as exited:
        ManagementUtility(["manage.py", "sync_changes", *args]).execute()

    assert exited.value.code == 2
    assert message in capsys.readouterr().err


# --- Exit 75: another run holds the lock ---------------------------------------------------------


@pytest.fixture
def lock_held_elsewhere():
    with run_lock_held_elsewhere():
        yield


def test_a_second_run_exits_75_at_once_with_one_line(
    fake_target, changes, sync_command, lock_held_elsewhere
):
    started = time.monotonic()
    result = sync_command()

    assert time.monotonic() - started < 1
    assert result.code == 75
    assert result.output == ""
    assert result.error.startswith("another sync_changes run holds the lock")
    assert result.error.endswith("; try again later")
    assert "\n" not in result.error
    assert fake_target.calls() == []
    assert pending_count() == 3
    assert not SyncRun.objects.exists()


def test_the_lock_is_free_again_after_a_run(fake_target, changes, sync_command):
    assert sync_command().code == 0
    assert sync_command().code == 0
    with exclusive_run():
        pass


# --- --dry-run -----------------------------------------------------------------------------------


def test_dry_run_prints_the_planned_calls_and_changes_nothing(
    fake_target, seed, make_post, make_comment, sync_command
):
    [updated, deleted], _ = seed(2)
    created = make_post()
    comment = make_comment(created)
    updated.title = "changed"
    updated.save()
    deleted_pk = deleted.pk
    deleted.delete()

    result = sync_command("--dry-run")

    assert result.code == 0
    assert result.lines == [
        f"POST /posts  (post {created.pk})",
        f"PUT /posts/{updated.pk}  (post {updated.pk})",
        f"POST /comments  (comment {comment.pk})",
        f"DELETE /posts/{deleted_pk}  (post {deleted_pk})",
        "Dry run: 4 calls planned (2 create, 1 update, 1 delete); nothing sent",
    ]
    assert fake_target.calls() == []
    assert pending_count() == 4
    assert not SyncRun.objects.exists()
    assert not EntitySyncState.objects.exclude(delivered_hash__gt="").exists()


def test_a_dry_run_leaves_out_the_updates_the_target_holds_already_as_the_run_then_does(
    fake_target, seed, sync_command
):
    [same, changed], _ = seed(2)
    title = same.title
    same.title = "for a moment"
    same.save()
    same.title = title
    same.save()  # back as the target holds it: two events, nothing to send
    changed.title = "changed"
    changed.save()

    dry = sync_command("--dry-run")

    assert dry.code == 0
    assert dry.lines == [
        f"PUT /posts/{changed.pk}  (post {changed.pk})",
        "Dry run: 1 calls planned (0 create, 1 update, 0 delete), 1 needing no call; nothing sent",
    ]
    assert fake_target.calls() == []
    assert pending_count() == 3

    real = sync_command()

    assert real.summary() == (2, 1, 0, 1, 0, 1, 0)
    assert [(c.method, c.path) for c in fake_target.calls()] == [("PUT", f"/posts/{changed.pk}")]
    assert target_state(fake_target) == expected_target()


# --- --full --------------------------------------------------------------------------------------


@pytest.fixture
def drifted(fake_target, seed):
    """A target that drifted from the database in every way, plus one pending local change.

    Post 0 is equal; post 1 differs on the target (no local event); post 2 is missing there
    with its comment; post 3 changed locally (pending event); the target has an extra post with
    a comment, an extra comment on post 0, and a comment of post 0 whose body drifted.
    """
    posts, comments = seed(4, comments_per_post=1)
    posts[3].title = "changed here"
    posts[3].save()
    state = fake_target.state()
    by_id = {record["id"]: record for record in state["posts"]}
    by_id[posts[1].pk]["title"] = "changed there"
    del by_id[posts[2].pk]
    extra_post = max(p.pk for p in posts) + 100
    by_id[extra_post] = {"id": extra_post, "userId": 1, "title": "extra", "body": ""}
    drifted_comments = {record["id"]: record for record in state["comments"]}
    drifted_comments[comments[0].pk]["body"] = "drifted"
    del drifted_comments[comments[2].pk]
    extra_comment = max(c.pk for c in comments) + 100
    for offset, post_id in ((0, posts[0].pk), (1, extra_post)):
        drifted_comments[extra_comment + offset] = {
            "id": extra_comment + offset,
            "postId": post_id,
            "name": "extra",
            "email": "x@example.com",
            "body": "",
        }
    fake_target.load(posts=list(by_id.values()), comments=list(drifted_comments.values()))
    return {
        "posts": posts,
        "comments": comments,
        "extra_post": extra_post,
        "extra_comments": [extra_comment, extra_comment + 1],
    }


def test_full_makes_a_drifted_target_equal_with_the_fewest_calls(
    fake_target, drifted, sync_command
):
    posts, comments = drifted["posts"], drifted["comments"]
    assert pending_count() == 1

    result = sync_command("--full", "--concurrency", "1")

    assert result.code == 0
    assert [(r.method, r.path) for r in fake_target.calls("GET")] == [
        ("GET", "/posts"),
        ("GET", "/comments"),
    ]
    assert writes(fake_target) == [
        ("POST", "/posts"),
        ("PUT", f"/posts/{posts[1].pk}"),
        ("PUT", f"/posts/{posts[3].pk}"),
        # A full run does not say which post a comment is on: they wait for the post creates.
        ("POST", "/comments"),
        ("PUT", f"/comments/{comments[0].pk}"),
        *[("DELETE", f"/comments/{pk}") for pk in drifted["extra_comments"]],
        ("DELETE", f"/posts/{drifted['extra_post']}"),
    ]
    assert fake_target.calls("POST", "/posts")[0].body == post_record(posts[2])
    assert fake_target.calls("POST", "/comments")[0].body == comment_record(comments[2])
    assert result.summary() == (8, 8, 2, 3, 3, 0, 0)
    assert target_state(fake_target) == expected_target()
    assert pending_count() == 0
    run = SyncRun.objects.get()
    assert (run.mode, run.status, run.events_pending) == ("full", "succeeded", 1)

    fake_target.reset_log()
    again = sync_command("--full")

    assert again.summary() == (0, 0, 0, 0, 0, 0, 0)
    assert writes(fake_target) == []


def test_full_dry_run_prints_the_diff_and_changes_nothing(fake_target, drifted, sync_command):
    before = fake_target.state()
    posts, comments = drifted["posts"], drifted["comments"]
    extra_comments = drifted["extra_comments"]

    result = sync_command("--full", "--dry-run")

    assert result.code == 0
    assert result.lines == [
        f"POST /posts  (post {posts[2].pk})",
        f"PUT /posts/{posts[1].pk}  (post {posts[1].pk})",
        f"PUT /posts/{posts[3].pk}  (post {posts[3].pk})",
        f"POST /comments  (comment {comments[2].pk})",
        f"PUT /comments/{comments[0].pk}  (comment {comments[0].pk})",
        f"DELETE /comments/{extra_comments[0]}  (not in the database)",
        f"DELETE /comments/{extra_comments[1]}  (not in the database)",
        f"DELETE /posts/{drifted['extra_post']}  (not in the database)",
        "Dry run: 8 calls planned (2 create, 3 update, 3 delete); nothing sent",
    ]
    assert writes(fake_target) == []
    assert fake_target.state() == before
    assert pending_count() == 1
    assert not SyncRun.objects.exists()


def test_full_leaves_the_events_of_failed_entities_pending(fake_target, drifted, sync_command):
    posts = drifted["posts"]
    fake_target.fail(400, method="PUT", path=f"/posts/{posts[3].pk}")

    result = sync_command("--full")

    assert result.code == 1
    assert result.failed == [
        f"FAILED PUT post {posts[3].pk}: PUT {fake_target.url}/posts/{posts[3].pk}: "
        'HTTP 400 Bad Request (application/json): {"error":"Bad Request"}'
    ]
    assert pending_count() == 1
    assert Post.objects.count() == 4 and Comment.objects.count() == 4


def test_a_failed_delete_of_a_record_not_in_the_database_names_the_record(
    fake_target, drifted, sync_command
):
    extra = drifted["extra_post"]
    fake_target.fail(400, method="DELETE", path=f"/posts/{extra}")

    result = sync_command("--full")

    assert result.code == 1
    assert result.failed == [
        f"FAILED DELETE /posts/{extra} (not in the database): DELETE {fake_target.url}/posts/"
        f'{extra}: HTTP 400 Bad Request (application/json): {{"error":"Bad Request"}}'
    ]
    assert extra in {record["id"] for record in fake_target.state()["posts"]}


# --- Politeness ----------------------------------------------------------------------------------


def test_max_rps_caps_the_request_rate(fake_target, edited_posts, sync_command):
    edited_posts(10, title="changed")

    started = time.monotonic()
    result = run_command("--url", fake_target.url, "--max-rps", "20", "--concurrency", "4")

    assert time.monotonic() - started >= 0.45
    assert result.code == 0 and len(writes(fake_target)) == 10


def test_concurrency_sends_calls_in_parallel_and_a_comment_after_its_post(
    fake_target, seed, make_post, make_comment, sync_command
):
    posts, comments = seed(12, comments_per_post=1)
    for post in posts[:8]:
        post.title = "changed"
        post.save()
    for _ in range(8):
        make_comment(make_post())
    for comment in comments[8:]:
        comment.delete()
    fake_target.latency = 0.02

    result = sync_command("--concurrency", "4")

    assert result.code == 0
    assert 1 < fake_target.max_in_flight <= 4
    calls = fake_target.calls()
    created = {r.body["id"]: r for r in calls if (r.method, r.path) == ("POST", "/posts")}
    comments_created = [r for r in calls if (r.method, r.path) == ("POST", "/comments")]
    assert len(comments_created) == 8
    for r in comments_created:
        assert r.received_at >= created[r.body["postId"]].answered_at
    assert target_state(fake_target) == expected_target()


def test_the_database_connection_is_left_usable(fake_target, changes, sync_command):
    sync_command()

    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)


@pytest.mark.parametrize(
    "url",
    [
        "http://sync:s3cret-word@127.0.0.1:99999",  # no port
        "http://sync:s3cret-word@127.0.0.1:3000/?x=1",  # a query
        "ftp://sync:s3cret-word@127.0.0.1:3000",
    ],
)
def test_a_url_refused_is_named_without_its_password(url):
    result = run_command("--url", url)

    assert result.code == 2
    assert "sync:***@" in result.error and "s3cret" not in result.error


@pytest.mark.parametrize("password", ["1234/abc", "pa/ss", "p?ss", "p#ss"])
def test_a_password_holding_a_slash_question_mark_or_hash_as_it_is_is_refused(password):
    result = run_command("--url", f"http://sync:{password}@127.0.0.1:3000", "--full")

    assert result.code == 2
    assert "percent-encode" in result.error and password not in result.error
    assert not SyncRun.objects.exists()


def test_the_help_shows_the_default_target_without_its_password(settings, capsys):
    settings.TARGET_URL = "http://sync:s3cret-word@127.0.0.1:3000"

    with pytest.raises(SystemExit):
        call_command("sync_changes", "--help")

    shown = capsys.readouterr().out
    assert "sync:***@127.0.0.1:3000" in shown and "s3cret" not in shown


def test_a_target_refusing_the_credentials_stops_the_run_and_parks_nothing(
    fake_target, edited_posts, settings
):
    settings.SYNC_MAX_ATTEMPTS = 2
    edited_posts(12)
    fake_target.credentials = ("sync", "right")
    wrong = with_user(fake_target.url, "sync:wrong")

    runs = [run_command("--url", wrong, "--max-rps", "0", "--concurrency", "1") for _ in range(3)]
    refused = [r for r in fake_target.calls() if r.status == 401]
    right = run_command("--url", with_user(fake_target.url, "sync:right"))

    for result in runs:
        assert result.code == 1
        assert result.lines[-1].endswith(
            "; stopped after 10 calls in a row were refused the user and password (HTTP 401): "
            "check them in TARGET_URL or --url"
        ), result.lines[-1]
        assert "wrong" not in result.output + result.error
    assert len(refused) == 30, "ten calls a run, then it stops"
    assert not EntitySyncState.objects.filter(parked_at__isnull=False).exists()
    assert (right.code, right.summary()[:2]) == (0, (12, 12))
    assert target_state(fake_target) == expected_target()


def test_credentials_refused_for_one_record_alone_are_that_records_failure(
    fake_target, edited_posts, settings, sync_command
):
    settings.SYNC_MAX_ATTEMPTS = 2
    posts = edited_posts(3)
    fake_target.fail(401, method="PUT", path=f"/posts/{posts[1].pk}")

    first = sync_command("--concurrency", "1")
    alone = sync_command("--concurrency", "1")  # no other write: whose refusal, it cannot tell
    posts[0].title = "edited again"
    posts[0].save()
    beside = sync_command("--concurrency", "1")

    runs = [first, alone, beside]
    assert [result.code for result in runs] == [1, 1, 1]
    assert not any("stopped" in result.lines[-1] for result in runs)
    assert first.summary()[:2] == (2, 2) and beside.summary()[:2] == (1, 1)
    failed = EntitySyncState.objects.get(entity_table="news_post", entity_pk=posts[1].pk)
    assert failed.parked_at is not None and failed.last_status == 401
    assert "check the user and password in TARGET_URL or --url" in failed.last_error
    assert EntitySyncState.objects.filter(parked_at__isnull=False).count() == 1


def test_credentials_that_may_read_but_not_write_park_nothing(
    fake_target, edited_posts, settings, sync_command
):
    settings.SYNC_MAX_ATTEMPTS = 2
    edited_posts(4)
    fake_target.fail(401, writes_only=True)  # read-only credentials: every write refused

    runs = [sync_command("--concurrency", "1") for _ in range(3)]

    assert [result.code for result in runs] == [1, 1, 1]
    assert not EntitySyncState.objects.filter(parked_at__isnull=False).exists()
    assert pending_count() == 4


class _ProxyRefusing(BaseHTTPRequestHandler):
    """A proxy that asks every client for credentials it will never take."""

    def _refuse(self) -> None:
        self.send_response(407)
        self.send_header("Proxy-Authenticate", 'Basic realm="proxy"')
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_CONNECT = do_GET = do_POST = do_PUT = do_DELETE = _refuse

    def log_message(self, *args) -> None:
        pass


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_a_proxy_refusing_its_credentials_is_named_with_where_they_are_set(
    edited_posts, monkeypatch, scheme
):
    edited_posts(12)
    proxy = ThreadingHTTPServer(("127.0.0.1", 0), _ProxyRefusing)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    monkeypatch.setenv(f"{scheme.upper()}_PROXY", f"http://127.0.0.1:{proxy.server_address[1]}")
    monkeypatch.setenv("NO_PROXY", "")
    try:
        result = run_command("--url", f"{scheme}://target.example", "--concurrency", "1")
    finally:
        proxy.shutdown()

    assert result.code == 1
    assert result.lines[-1].endswith(
        "; stopped after 10 calls in a row were refused the user and password (HTTP 407): "
        "check the proxy's in HTTP_PROXY or HTTPS_PROXY"
    ), result.lines[-1]
    assert "check the proxy's user and password in HTTP_PROXY or HTTPS_PROXY" in result.output
    assert not EntitySyncState.objects.filter(parked_at__isnull=False).exists()


@pytest.mark.parametrize(
    ("credentials", "in_url"),
    [(("us\u00e9r", "p\u00e9\u20ac"), "us%C3%A9r:p%C3%A9%E2%82%AC")],
)
def test_credentials_beyond_ascii_are_sent_as_their_utf8_bytes(changes, credentials, in_url):
    from fake_target import FakeTarget

    with FakeTarget(credentials=credentials) as target:
        latin1 = run_command("--url", with_user(target.url, "u:p%FFx"))
        result = run_command("--url", with_user(target.url, in_url))

    assert result.code == 0, result.output + result.error
    assert target_state(target) == expected_target()
    assert latin1.code == 1 and "HTTP 401" in latin1.output and "Traceback" not in latin1.error


def test_a_password_holding_an_at_sign_is_hidden_whole(make_post):
    make_post()
    url = f"http://sync:s3c@ret@127.0.0.1:{free_port()}"

    result = run_command("--url", url, "--max-rps", "0", "--concurrency", "1")

    shown = result.output + result.error
    assert "POST http://127.0.0.1:" in shown and "ret@" not in shown and "s3c" not in shown
