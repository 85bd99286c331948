"""import_initial_data: the target's posts and comments land in an empty database, ids kept."""

import re
import socket
import subprocess
import threading
import time
from io import StringIO

import pytest
from django import db
from django.core.management import CommandError, call_command

from fake_target.data import generate_dataset
from news.models import Comment, Post
from news.signals import rows_created
from sync.importing import (
    ImportRefused,
    ImportReport,
    ImportStopped,
    ImportValidationError,
    import_initial_data,
)
from sync.models import EntitySyncState, ModelEvent, SyncTarget
from testing.clients import wsgi_get
from testing.processes import run_manage
from testing.sync import with_user

pytestmark = [pytest.mark.django_db, pytest.mark.timeout(30)]

SUMMARY = re.compile(r"^Imported (\d+) posts? and (\d+) comments? from (\S+) in \d+\.\d s$")
NOTHING_IMPORTED = "Nothing was imported."


@pytest.fixture(autouse=True)
def _give_up_fast(settings):
    """One quick retry, so failure cases stay well under a second."""
    settings.SYNC_RETRIES = 1
    settings.SYNC_BACKOFF_FACTOR = 0.01
    settings.SYNC_BACKOFF_MAX = 0.01


@pytest.fixture
def target(fake_target):
    fake_target.load_generated(100)
    return fake_target


def run_import(url: str, *args: str) -> str:
    out = StringIO()
    call_command("import_initial_data", "--url", url, *args, stdout=out)
    return out.getvalue()


def failed_import(url: str, *args: str) -> str:
    with pytest.raises(CommandError) as failure:
        run_import(url, *args)
    return str(failure.value)


def assert_nothing_written() -> None:
    assert Post.objects.count() == 0
    assert Comment.objects.count() == 0
    assert ModelEvent.objects.count() == 0


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


# --- A clean import ----------------------------------------------------------------------------


def test_imports_every_post_and_comment_with_its_id_and_content(target):
    output = run_import(target.url)

    assert SUMMARY.match(output.strip()).groups() == ("100", "500", target.url)
    posts = {p.id: p for p in Post.objects.all()}
    comments = {c.id: c for c in Comment.objects.all()}
    assert {
        i: {"userId": p.user_id, "id": p.id, "title": p.title, "body": p.body}
        for i, p in posts.items()
    } == target.posts
    assert {
        i: {"postId": c.post_id, "id": c.id, "name": c.name, "email": c.email, "body": c.body}
        for i, c in comments.items()
    } == target.comments
    assert all("\n" in row.body for row in [*posts.values(), *comments.values()])
    assert {row.created_by_id for row in [*posts.values(), *comments.values()]} == {None}


@pytest.mark.django_db(transaction=True)
def test_an_import_ends_the_cached_answers_of_the_empty_database(target, read_cache):
    for _ in range(2):
        assert wsgi_get("/news/posts/").json()["count"] == 0
    assert wsgi_get("/news/posts/")["X-Cache"] == "hit"

    run_import(target.url)

    answer = wsgi_get("/news/posts/")
    assert (answer.json()["count"], answer["X-Cache"]) == (100, "miss")


def test_an_import_that_the_cache_cannot_be_told_of_imports_nothing(target, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # set, and nothing listens there

    message = failed_import(target.url)

    assert "cannot be reached" in message and "nothing was changed" in message, message
    assert message.endswith("(REDIS_URL)")
    assert_nothing_written()


def test_imported_rows_are_not_change_events(target):
    run_import(target.url)

    assert ModelEvent.objects.count() == 0


def test_reads_each_collection_once_over_one_connection(target):
    run_import(target.url)

    assert [(r.method, r.path) for r in target.requests] == [
        ("GET", "/posts"),
        ("GET", "/comments"),
    ]
    assert target.connections_opened == 1


def test_the_next_post_and_comment_created_through_the_api_get_the_next_ids(target, api_client):
    run_import(target.url)

    post = api_client.post("/news/posts/", {"title": "After the import", "body": "b"})
    comment = api_client.post(
        "/news/posts/1/comments/", {"name": "n", "email": "n@example.com", "body": "b"}
    )

    assert (post.status_code, post.json()["id"]) == (201, 101)
    assert (comment.status_code, comment.json()["id"]) == (201, 501)
    assert list(ModelEvent.objects.values_list("entity_table", "entity_pk")) == [
        ("news_post", 101),
        ("news_comment", 501),
    ]


def test_ids_continue_after_the_largest_imported_id_even_with_gaps(fake_target, api_client):
    fake_target.load(
        posts=[
            {"userId": 1, "id": 7, "title": "seven", "body": ""},
            {"userId": 2, "id": 40, "title": "forty", "body": "x\ny"},
        ],
        comments=[{"postId": 40, "id": 900, "name": "n", "email": "a@b.co", "body": "c"}],
    )
    run_import(fake_target.url)

    assert api_client.post("/news/posts/", {"title": "next"}).json()["id"] == 41
    assert Comment.objects.create(post_id=7, name="n", email="a@b.co").id == 901


def test_a_string_id_target_is_imported_under_local_ids_with_its_ids_kept(fake_target):
    fake_target.string_ids = True
    fake_target.load(
        posts=[
            {"userId": 1, "id": 3, "title": "three", "body": "b"},  # served as "3"
            {"userId": 2, "id": "Q2rmeYny5Gc", "title": "created there", "body": "b"},
        ],
        comments=[
            {"postId": 3, "id": 1, "name": "on three", "email": "a@b.co", "body": "c"},
            {"postId": "Q2rmeYny5Gc", "id": "x-9", "name": "on Q2", "email": "a@b.co", "body": ""},
        ],
    )

    output = run_import(fake_target.url)

    assert SUMMARY.match(output.strip())
    assert list(Post.objects.order_by("id").values_list("id", "title")) == [
        (3, "three"),
        (4, "created there"),
    ]
    assert list(Comment.objects.order_by("id").values_list("id", "post_id", "name")) == [
        (1, 3, "on three"),
        (2, 4, "on Q2"),
    ]
    states = {
        (s.entity_table, s.entity_pk): (s.remote_id, s.remote_key)
        for s in EntitySyncState.objects.all()
    }
    assert states == {
        ("news_post", 3): ("3", "3"),
        ("news_post", 4): ("Q2rmeYny5Gc", "Q2rmeYny5Gc"),
        ("news_comment", 1): ("1", "1"),
        ("news_comment", 2): ("x-9", "x-9"),
    }
    assert SyncTarget.objects.get().url == fake_target.url


def test_an_import_from_a_string_id_target_syncs_to_it_without_a_second_copy(fake_target, sync):
    fake_target.string_ids = True
    fake_target.load_generated(3)
    run_import(fake_target.url)
    post = Post.objects.get(pk=2)
    post.title = "edited"
    post.save()
    comment = Comment.objects.create(post=post, name="new", email="n@b.co", body="b")

    assert sync().ok
    assert len(fake_target.posts) == 3 and len(fake_target.comments) == 16
    assert fake_target.posts["2"]["title"] == "edited"
    [new] = [c for c in fake_target.comments.values() if c["name"] == "new"]
    assert new["postId"] == "2"
    assert (
        EntitySyncState.objects.get(entity_pk=comment.pk, entity_table="news_comment").remote_id
        == new["id"]
    )
    assert sync(full=True).calls_made == 0


def test_an_empty_target_imports_nothing_and_says_so(fake_target):
    output = run_import(fake_target.url)

    assert SUMMARY.match(output.strip()).groups()[:2] == ("0", "0")
    assert_nothing_written()


def test_a_transient_failure_is_retried_and_the_import_goes_on(target):
    target.fail(503, times=1, path="/comments")

    run_import(target.url)

    assert Comment.objects.count() == 500
    assert [r.status for r in target.calls(path_prefix="/comments")] == [503, 200]


def test_the_url_defaults_to_target_url(target, settings):
    settings.TARGET_URL = target.url
    out = StringIO()

    call_command("import_initial_data", stdout=out)

    assert f"from {target.url} in" in out.getvalue()


def test_no_progress_bar_when_stdout_is_not_a_terminal(target, capsys):
    output = run_import(target.url)

    assert output.count("\n") == 1
    assert capsys.readouterr().out == ""


def test_the_service_reports_counts_and_draws_a_bar_when_asked(target, target_client, capsys):
    report = import_initial_data(client=target_client, progress=True, batch_size=64)

    assert isinstance(report, ImportReport)
    assert (report.posts, report.comments, report.source) == (100, 500, target.url)
    assert report.seconds >= report.write_seconds > 0
    assert "Importing" in capsys.readouterr().out
    assert Comment.objects.count() == 500


# --- Refusal -----------------------------------------------------------------------------------


def test_refuses_a_database_that_has_posts_and_changes_nothing(target, user):
    post = Post.objects.create(user_id=1, title="Already here")
    Comment.objects.create(post=post, name="n", email="n@example.com")
    events = ModelEvent.objects.count()

    message = failed_import(target.url)

    assert message == (
        "The database already has 1 post and 1 comment; the initial import only runs on an "
        "empty database. Nothing was changed. To start over, empty it first: manage.py flush "
        "(make reset)."
    )
    assert list(Post.objects.values_list("id", flat=True)) == [post.id]
    assert ModelEvent.objects.count() == events
    assert target.requests == []


def test_the_service_refuses_with_a_typed_error(target, target_client):
    Post.objects.create(user_id=1, title="Already here")

    with pytest.raises(ImportRefused, match="already has 1 post and 0 comments"):
        import_initial_data(client=target_client)


@pytest.mark.django_db(transaction=True)
def test_a_post_created_while_downloading_stops_the_import(target):
    target.stall(0.5, path="/comments")

    def create_a_post_meanwhile() -> None:
        while not target.calls(path_prefix="/comments"):
            time.sleep(0.01)
        Post.objects.create(user_id=1, title="Sneaked in")
        db.connection.close()

    writer = threading.Thread(target=create_a_post_meanwhile)
    writer.start()
    try:
        message = failed_import(target.url)
    finally:
        writer.join()

    assert message.startswith("The database already has 1 post and 0 comments;")
    assert list(Post.objects.values_list("title", flat=True)) == ["Sneaked in"]
    assert Comment.objects.count() == 0


# --- Bad records -------------------------------------------------------------------------------


def _set(collection: str, index: int, field: str, value):
    def change(posts, comments):
        (posts if collection == "posts" else comments)[index][field] = value

    return change


def _drop(collection: str, index: int, field: str):
    def change(posts, comments):
        del (posts if collection == "posts" else comments)[index][field]

    return change


BAD_RECORDS = {
    "title too long": (
        _set("posts", 6, "title", "t" * 257),
        "posts id=7, field title: Ensure this field has no more than 256 characters.",
    ),
    "blank title": (
        _set("posts", 6, "title", "  "),
        "posts id=7, field title: This field may not be blank.",
    ),
    "missing title": (
        _drop("posts", 6, "title"),
        "posts id=7, field title: This field is required.",
    ),
    "null body": (
        _set("posts", 6, "body", None),
        "posts id=7, field body: This field may not be null.",
    ),
    "post body too long": (
        _set("posts", 6, "body", "b" * 1025),
        "posts id=7, field body: Ensure this field has no more than 1024 characters.",
    ),
    "userId as text": (
        _set("posts", 6, "userId", "1"),
        "posts id=7, field userId: A valid integer is required.",
    ),
    "missing userId": (
        _drop("posts", 6, "userId"),
        "posts id=7, field userId: This field is required.",
    ),
    "fractional id": (
        _set("comments", 2, "id", 3.5),
        "comments record #3 (id=3.5), field id: An id must be a JSON integer or a string of 1 "
        "to 255 printable characters.",
    ),
    "id true": (
        _set("posts", 6, "id", True),
        "posts record #7 (id=true), field id: An id must be a JSON integer or a string of 1 "
        "to 255 printable characters.",
    ),
    "empty id": (
        _set("posts", 6, "id", ""),
        'posts record #7 (id=""), field id: An id must be a JSON integer or a string of 1 '
        "to 255 printable characters.",
    ),
    "id too long": (
        _set("posts", 6, "id", "x" * 256),
        "posts record #7 (id=" + '"' + "x" * 256 + '"' + "), field id: An id must be a JSON "
        "integer or a string of 1 to 255 printable characters.",
    ),
    "the same id as text and as a number": (
        _set("posts", 7, "id", "7"),
        'posts id="7", field id: Duplicate id (also record #7).',
    ),
    "missing id": (
        _drop("posts", 6, "id"),
        "posts record #7 (no id), field id: This field is required.",
    ),
    "id zero": (
        _set("posts", 6, "id", 0),
        "posts id=0, field id: Ensure this value is greater than or equal to 1.",
    ),
    "duplicate post id": (
        _set("posts", 7, "id", 7),
        "posts id=7, field id: Duplicate id (also record #7).",
    ),
    "duplicate comment id": (
        _set("comments", 9, "id", 1),
        "comments id=1, field id: Duplicate id (also record #1).",
    ),
    "bad email": (
        _set("comments", 2, "email", "not-an-email"),
        "comments id=3, field email: Enter a valid email address.",
    ),
    "name too long": (
        _set("comments", 2, "name", "n" * 129),
        "comments id=3, field name: Ensure this field has no more than 128 characters.",
    ),
    "null character": (
        _set("comments", 2, "body", "a\x00b"),
        "comments id=3, field body: Null characters are not allowed.",
    ),
    "lone surrogate": (
        _set("comments", 2, "body", "a\ud800b"),
        "comments id=3, field body: Surrogate characters are not allowed: U+D800.",
    ),
    "comment whose post is missing": (
        _set("comments", 4, "postId", 999),
        "comments id=5, field postId: Post 999 is not among the target's posts.",
    ),
    "postId of a missing post, as text": (
        _set("comments", 4, "postId", "999"),
        "comments id=5, field postId: Post 999 is not among the target's posts.",
    ),
}


@pytest.mark.parametrize("change, problem", BAD_RECORDS.values(), ids=BAD_RECORDS.keys())
def test_a_bad_record_is_named_and_nothing_is_written(fake_target, change, problem):
    posts, comments = generate_dataset(10)
    change(posts, comments)
    fake_target.load(posts=[], comments=[])
    fake_target.posts = dict(enumerate(posts))  # as served, even with broken ids
    fake_target.comments = dict(enumerate(comments))

    message = failed_import(fake_target.url)

    assert message.splitlines() == [
        "1 problem in the target's data; nothing was imported:",
        problem,
    ]
    assert_nothing_written()


def test_lists_the_first_ten_problems_and_counts_the_rest(fake_target):
    posts, comments = generate_dataset(10)
    for comment in comments[:15]:
        comment["email"] = "nobody"
    posts[0]["title"] = ""
    fake_target.load(posts=posts, comments=comments)

    lines = failed_import(fake_target.url).splitlines()

    assert lines[0] == "16 problems in the target's data; nothing was imported:"
    assert lines[1] == "posts id=1, field title: This field may not be blank."
    assert lines[2:11] == [
        f"comments id={i}, field email: Enter a valid email address." for i in range(1, 10)
    ]
    assert lines[11:] == ["... and 6 more"]
    assert_nothing_written()


def test_a_record_with_several_problems_gets_a_line_for_each(fake_target):
    fake_target.load(
        posts=[{"userId": "x", "id": 1, "title": "", "body": "ok"}],
        comments=[],
    )

    assert failed_import(fake_target.url).splitlines()[1:] == [
        "posts id=1, field userId: A valid integer is required.",
        "posts id=1, field title: This field may not be blank.",
    ]


def test_the_service_raises_problems_as_data(fake_target, target_client):
    posts, comments = generate_dataset(3)
    comments[0]["email"] = "broken"
    fake_target.load(posts=posts, comments=comments)

    with pytest.raises(ImportValidationError) as failure:
        import_initial_data(client=target_client)

    problem = failure.value.problems[0]
    assert (problem.resource, problem.record_id, problem.field) == ("comments", 1, "email")
    assert failure.value.total == 1


def test_text_is_cleaned_as_the_api_cleans_it(fake_target):
    fake_target.load(
        posts=[{"userId": 1, "id": 1, "title": "  padded  ", "body": "\nline one\nline two\n"}],
        comments=[{"postId": 1, "id": 1, "name": 12, "email": "a@b.co", "body": ""}],
    )

    run_import(fake_target.url)

    post, comment = Post.objects.get(), Comment.objects.get()
    assert (post.title, post.body) == ("padded", "line one\nline two")
    assert (comment.name, comment.body) == ("12", "")


def test_an_optional_field_left_out_gets_the_model_default(fake_target):
    fake_target.load(
        posts=[{"userId": 1, "id": 1, "title": "no body"}],
        comments=[{"postId": 1, "id": 1, "name": "n", "email": "a@b.co"}],
    )

    run_import(fake_target.url)

    assert Post.objects.get().body == ""
    assert Comment.objects.get().body == ""


# --- The target fails --------------------------------------------------------------------------


def test_an_unreachable_target_is_one_line_and_nothing_is_written(db):
    url = closed_port_url()

    message = failed_import(url)

    assert message.startswith(f"Cannot read the target: GET {url}/posts: connection failed (")
    assert message.endswith(NOTHING_IMPORTED)
    assert "\n" not in message
    assert_nothing_written()


@pytest.mark.parametrize("status", [500, 503, 404])
def test_an_error_answer_is_one_line_and_nothing_is_written(target, status):
    target.fail(status, path="/comments")

    message = failed_import(target.url)

    assert message.startswith(f"Cannot read the target: GET {target.url}/comments: HTTP {status}")
    assert message.endswith(NOTHING_IMPORTED)
    assert "\n" not in message
    assert_nothing_written()


def test_an_html_error_page_is_quoted_on_one_line_by_its_start(target):
    page = (
        "<!DOCTYPE html>\n<html>\n<body>\n" + "<pre>Traceback (most recent call last):</pre>\n" * 50
    )
    target.answer(502, body=page, content_type="text/html; charset=utf-8", path="/posts")

    message = failed_import(target.url)

    prefix = f"Cannot read the target: GET {target.url}/posts: HTTP 502 Bad Gateway (text/html): "
    assert message.startswith(prefix + "<!DOCTYPE html> <html> <body> <pre>Traceback")
    quoted = message.removeprefix(prefix).removesuffix(" " + NOTHING_IMPORTED)
    assert len(quoted) <= 101 and "\n" not in message
    assert_nothing_written()


def test_an_answer_that_is_not_json_is_one_line_and_nothing_is_written(target):
    target.answer(200, body="<html>\n<p>Down for maintenance</p>\n</html>", path="/posts")

    message = failed_import(target.url)

    assert message == (
        f"Cannot read the target: GET {target.url}/posts: the answer is not JSON. "
        + NOTHING_IMPORTED
    )
    assert_nothing_written()


@pytest.mark.parametrize("body", ['{"posts": []}', "[1, 2]", '"a string"', "null"])
def test_json_that_is_not_a_list_of_objects_is_refused(target, body):
    target.answer(200, body=body, path="/comments")

    message = failed_import(target.url)

    assert message == (
        f"Cannot read the target: GET {target.url}/comments did not answer with a JSON list. "
        + NOTHING_IMPORTED
    )
    assert_nothing_written()


def test_a_slow_target_times_out_with_one_line_and_nothing_is_written(target):
    target.stall(2.0, path="/posts")

    message = failed_import(target.url, "--timeout", "0.2")

    assert message == (
        f"Cannot read the target: GET {target.url}/posts: no answer within 0.2 s. "
        + NOTHING_IMPORTED
    )
    assert_nothing_written()


def test_a_dropped_connection_is_one_line_and_nothing_is_written(target):
    target.drop(path="/comments")

    message = failed_import(target.url)

    assert message.startswith(f"Cannot read the target: GET {target.url}/comments: ")
    assert "\n" not in message
    assert_nothing_written()


def test_a_target_that_drips_its_answer_times_out_within_the_timeout(target):
    target.drip(1, every=0.05, path="/posts")

    started = time.monotonic()
    message = failed_import(target.url, "--timeout", "0.3")

    assert message == (
        f"Cannot read the target: GET {target.url}/posts: no answer within 0.3 s. "
        + NOTHING_IMPORTED
    )
    assert time.monotonic() - started < 2 * 0.3 + 0.5  # SYNC_RETRIES=1: two attempts
    assert_nothing_written()


def test_a_stop_asked_while_rows_are_written_rolls_every_row_back(target, target_client):
    written = []

    def note(sender, pks, **kwargs) -> None:
        written.append(sender)

    rows_created.connect(note, sender=Post)  # the posts are in, in the transaction
    try:
        with pytest.raises(ImportStopped):
            import_initial_data(client=target_client, batch_size=10, stop=lambda: bool(written))
    finally:
        rows_created.disconnect(note, sender=Post)

    assert written == [Post]
    assert_nothing_written()
    assert not EntitySyncState.objects.exists()


def test_once_a_stop_is_asked_no_read_starts(target, target_client):
    with pytest.raises(ImportStopped):
        import_initial_data(client=target_client, stop=lambda: bool(target.calls()))

    assert [r.path for r in target.calls()] == ["/posts"]
    assert_nothing_written()


@pytest.mark.parametrize(
    "args, error",
    [
        (["--url", "ftp://example.com"], "--url: must be an http(s) URL"),
        (["--url", "http://127.0.0.1:1", "--timeout", "0"], "--timeout: must be more than 0"),
        (["--url", "http://127.0.0.1:1", "--timeout", "soon"], "must be a number of seconds"),
        (["--url", "http://127.0.0.1:1", "--timeout", "inf"], "--timeout: must be at most 86400"),
        (["--url", "http://127.0.0.1:1", "--timeout", "1e300"], "--timeout: must be at most 86400"),
    ],
)
def test_bad_arguments_are_refused_before_anything_happens(args, error):
    with pytest.raises(CommandError, match=re.escape(error)):
        call_command("import_initial_data", *args, stdout=StringIO())


# --- As operators run it -----------------------------------------------------------------------


def _manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    return run_manage("import_initial_data", *args, **env)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_command_line_prints_one_line_and_sets_the_exit_status(target):
    done = _manage("--url", target.url)
    refused = _manage("--url", target.url)

    assert (done.returncode, done.stderr) == (0, "")
    assert SUMMARY.match(done.stdout.strip())
    assert Post.objects.count() == 100
    assert refused.returncode == 1
    assert refused.stdout == ""
    assert refused.stderr == (
        "CommandError: The database already has 100 posts and 500 comments; the initial import "
        "only runs on an empty database. Nothing was changed. "
        "To start over, empty it first: manage.py flush (make reset).\n"
    )


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_command_line_reports_a_failing_target_in_one_line_without_traceback(target):
    target.fail(500)

    failed = _manage("--url", target.url, SYNC_RETRIES="2", SYNC_BACKOFF_MAX="0.01")

    assert failed.returncode == 1
    assert failed.stderr.startswith(f"CommandError: Cannot read the target: GET {target.url}")
    assert failed.stderr.count("\n") == 1
    assert len(target.requests) == 3
    assert_nothing_written()


@pytest.mark.postgres
def test_the_command_line_reports_an_unreachable_target_in_one_line():
    url = closed_port_url()

    failed = _manage("--url", url, SYNC_RETRIES="2", SYNC_BACKOFF_MAX="0.01")

    assert failed.returncode == 1
    assert failed.stderr.startswith(
        f"CommandError: Cannot read the target: GET {url}/posts: connection failed ("
    )
    assert failed.stderr.count("\n") == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_command_line_refuses_in_one_line_while_redis_is_set_and_out_of_reach(target):
    redis_url = closed_port_url().replace("http://", "redis://") + "/0"

    refused = _manage("--url", target.url, REDIS_URL=redis_url)

    assert refused.returncode == 1
    assert refused.stdout == ""
    [line] = refused.stderr.splitlines()
    assert line.startswith("CommandError: The cache of reads (Redis) cannot be reached"), line
    assert "nothing was changed" in line and "Connection refused" in line
    assert line.endswith("(REDIS_URL)")
    assert Post.objects.count() == 0


def test_a_user_and_password_in_the_url_are_sent_and_never_shown():
    from fake_target import FakeTarget

    posts = [{"userId": 1, "id": 1, "title": "t", "body": "b"}]
    with FakeTarget(posts=posts, credentials=("sync", "s3cret-word")) as target:
        plain = target.url
        output = run_import(with_user(plain, "sync:s3cret-word"))

    assert output.startswith(f"Imported 1 post and 0 comments from {plain} in ")
    assert "s3cret" not in output
    assert [request.status for request in target.requests] == [200, 200]
