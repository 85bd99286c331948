"""Targets as they are: opaque string ids, answers without ids, targets that rewrite what they
store, POSTs that land late, a target that keeps nothing, a target that is not the one the sync
state describes, and output that says what really happened.

Each test drives the real service against the fake target in one of its modes and asserts what
reached the target, what the database remembers and what the run reported.
"""

import threading
import time
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from news.models import Post
from sync.client import TargetApiClient
from sync.models import EntitySyncState, SyncRun, SyncTarget
from sync.planner import Call, EntityKey, Kind, Op
from sync.syncing import SyncOptions, outcomes, sync_changes
from sync.syncing.deliveries import Action, Delivery
from testing.commands import run_command
from testing.ports import free_port
from testing.sync import (
    comment_record,
    expected_target,
    pending_count,
    post_record,
    remote_ids,
    state_of,
    target_state,
    writes,
)

pytestmark = [pytest.mark.django_db, pytest.mark.timeout(60)]


def records(target, name: str) -> list[dict]:
    return list(getattr(target, name).values())


def flag(obj, record: dict, *, run_id: int | None = None) -> None:
    """As a run leaves a create it sent and never heard back from."""
    kind = Kind.POST if isinstance(obj, Post) else Kind.COMMENT
    delivery = Delivery(Call(Op.CREATE, EntityKey(kind, obj.pk)), Action.POST, record=record)
    outcomes.flag_creates([delivery], run_id=run_id)


@pytest.fixture
def string_target(fake_target):
    """A target like json-server 1.0: string ids, and a random one for every POST."""
    fake_target.string_ids = True
    return fake_target


def command(url: str, *args: str) -> tuple[int, list[str], str]:
    code, output, error = run_command(
        "sync_changes", "--url", url, "--max-rps", "0", "--timeout", "2", *args
    )
    return code, output.splitlines(), error


# --- Remote ids are opaque: kept as the target gave them ------------------------------------------


def test_a_post_created_on_a_string_id_target_is_edited_and_deleted_under_the_id_it_gave(
    string_target, make_post, sync
):
    post = make_post(title="first")
    assert sync().ok
    [stored] = records(string_target, "posts")
    assert isinstance(stored["id"], str) and stored["id"] != str(post.pk)
    assert state_of(post).remote_id == stored["id"]

    post.title = "edited"
    post.save()
    report = sync()

    assert report.ok
    assert writes(string_target)[-1] == ("PUT", f"/posts/{stored['id']}")
    assert (report.calls[Op.CREATE], report.calls[Op.UPDATE]) == (0, 1)
    assert records(string_target, "posts") == [post_record(post, remote_id=stored["id"])]

    post.delete()
    assert sync().ok
    assert writes(string_target)[-1] == ("DELETE", f"/posts/{stored['id']}")
    assert string_target.posts == {}


def test_a_comment_on_a_new_post_carries_the_posts_remote_id(
    string_target, make_post, make_comment, sync
):
    post = make_post()
    comment = make_comment(post)

    assert sync().ok

    [stored_post] = records(string_target, "posts")
    [stored_comment] = records(string_target, "comments")
    assert stored_comment["postId"] == stored_post["id"]
    assert state_of(comment).remote_id == stored_comment["id"]
    assert target_state(string_target) == expected_target()


def test_the_whole_cycle_on_a_string_id_target_ends_equal_and_full_then_sends_nothing(
    string_target, make_post, make_comment, sync
):
    posts = [make_post(title=f"post {n}") for n in range(3)]
    for post in posts:
        make_comment(post, name=f"on {post.title}")
    assert sync().ok
    posts[0].title = "edited"
    posts[0].save()
    posts[1].delete()
    make_comment(posts[2], name="another")
    assert sync().ok
    string_target.reset_log()

    first, second = sync(full=True), sync(full=True)

    assert first.ok and second.ok
    assert writes(string_target) == []
    assert (first.calls_made, second.calls_made) == (0, 0)
    assert target_state(string_target) == expected_target()
    assert len(string_target.posts) == Post.objects.count()


def test_full_on_a_string_id_target_repairs_drift_without_a_second_copy(
    string_target, make_post, sync
):
    post = make_post(title="ours")
    assert sync().ok
    [remote_id] = string_target.posts
    string_target.posts[remote_id]["title"] = "drifted"

    report = sync(full=True)

    assert report.ok
    assert writes(string_target)[-1] == ("PUT", f"/posts/{remote_id}")
    assert records(string_target, "posts") == [post_record(post, remote_id=remote_id)]


def test_remote_ids_are_compared_by_their_text(fake_target, seed, sync):
    """json-server 0.17 treats "5" and 5 as one record: so does the sync."""
    [post], _ = seed(1)
    fake_target.posts = {str(post.pk): {**fake_target.posts[post.pk], "id": str(post.pk)}}

    report = sync(full=True)

    assert report.ok
    assert writes(fake_target) == []
    assert report.entities_unchanged == 0 and report.calls_made == 0


def test_full_keys_the_targets_records_by_any_id_and_deletes_only_what_no_one_holds(
    string_target, make_post, sync
):
    post = make_post()
    assert sync().ok
    string_target.posts["not-ours"] = {"id": "not-ours", "userId": 9, "title": "x", "body": "y"}

    report = sync(full=True)

    assert report.ok
    assert writes(string_target)[-1] == ("DELETE", "/posts/not-ours")
    assert list(string_target.posts) == [state_of(post).remote_id]


# --- An answer without a usable id is an unknown outcome, never "our id" ---------------------


@pytest.mark.parametrize("answer_id", ["none", "unreadable"])
def test_a_create_answered_without_a_usable_id_is_found_by_its_content_not_taken_by_id(
    fake_target, make_post, sync, answer_id
):
    fake_target.assign_ids = True
    theirs = [
        {"id": n, "userId": 9, "title": f"theirs {n}", "body": "not ours"} for n in (1001, 1002)
    ]
    fake_target.load(posts=theirs, comments=[])
    post = make_post(title="ours")
    # Another party's record holds our post's own id.
    fake_target.posts[post.pk] = {"id": post.pk, "userId": 9, "title": "theirs", "body": "x"}
    if answer_id == "none":
        fake_target.answers_without_ids = True
    else:
        fake_target.answer(201, body={"id": 12.5}, method="POST", after_processing=True)

    assert sync().ok
    remote_id = state_of(post).remote_id
    assert remote_id not in (1001, 1002, post.pk)
    assert fake_target.posts[remote_id] == post_record(post, remote_id=remote_id)

    post.title = "edited"
    post.save()
    assert sync().ok
    pk = post.pk
    post.delete()
    assert sync().ok

    assert fake_target.posts[pk] == {
        "id": pk,
        "userId": 9,
        "title": "theirs",
        "body": "x",
    }
    assert remote_id not in fake_target.posts
    assert records(fake_target, "posts")[:2] == theirs


# --- Targets that rewrite what they store ---------------------------------------------------------


@pytest.fixture
def lowercasing_target(fake_target):
    fake_target.rewrite = {"email": str.lower}
    return fake_target


def test_full_settles_on_a_target_that_lowercases_emails(
    lowercasing_target, make_post, make_comment, sync
):
    make_comment(make_post(), email="Alice@Example.COM")
    assert sync().ok
    lowercasing_target.reset_log()

    reports = [sync(full=True) for _ in range(3)]

    assert [r.calls_made for r in reports] == [0, 0, 0]
    assert writes(lowercasing_target) == []
    assert all(r.ok for r in reports)


def post_on_a_target_known_to_rewrite(fake_target, make_post, make_comment, sync, ids: str) -> Post:
    """A post delivered to a target that lowercases e-mails and picks its ids ("assigned") or
    keeps ours ("kept"), with a first comment whose answer showed the rewrite."""
    fake_target.assign_ids = ids == "assigned"
    fake_target.rewrite = {"email": str.lower}
    post = make_post()
    assert sync().ok
    make_comment(post, name="first", email="First@Example.com")
    assert sync().ok
    assert SyncTarget.objects.get().rewrites == {"comment": ["email"]}
    return post


@pytest.mark.parametrize("ids", ["assigned", "kept"])
def test_a_create_whose_answer_was_lost_is_found_though_the_target_rewrote_it(
    fake_target, make_post, make_comment, sync, ids
):
    post = post_on_a_target_known_to_rewrite(fake_target, make_post, make_comment, sync, ids)
    comment = make_comment(post, name="second", email="Bob@Example.com")
    fake_target.drop(method="POST", times=1, after_processing=True)
    fake_target.reset_log()

    report = sync()

    assert report.ok, report.failed
    assert [m for m, _ in writes(fake_target)] == ["POST"]
    [stored] = [c for c in records(fake_target, "comments") if c["name"] == "second"]
    assert state_of(comment).remote_id == stored["id"]
    assert stored["email"] == "bob@example.com"
    assert pending_count() == 0


@pytest.mark.parametrize("ids", ["assigned", "kept"])
def test_a_create_flagged_by_a_killed_run_is_found_on_a_rewriting_target(
    fake_target, make_post, make_comment, sync, ids
):
    post = post_on_a_target_known_to_rewrite(fake_target, make_post, make_comment, sync, ids)
    comment = make_comment(post, name="second", email="Carol@Example.com")
    sent = comment_record(comment, post_remote_id=state_of(post).remote_id)
    # A run flagged the create, sent it, and was killed before the answer: the target holds it,
    # under our id (json-server 0.17) or one of its own.
    flag(comment, sent)
    landed = 77 if ids == "assigned" else comment.pk
    fake_target.comments[landed] = {**sent, "id": landed, "email": sent["email"].lower()}
    fake_target.reset_log()

    report = sync()

    assert report.ok, report.failed
    assert writes(fake_target) == []
    assert state_of(comment).remote_id == landed
    assert len(fake_target.comments) == 2


def test_a_first_rewrite_is_found_under_its_own_id_on_a_target_that_keeps_ids(
    fake_target, make_post, make_comment, sync
):
    """No answer has shown the rewrite yet; the target keeps the ids it is sent (json-server
    0.17), so the record under the comment's own id that holds it once normalised is its."""
    fake_target.rewrite = {"name": str.strip}
    post = make_post()
    assert sync().ok  # the answer shows that the target keeps the ids it is sent
    comment = make_comment(post, name="  Padded  ")
    fake_target.drop(method="POST", times=1, after_processing=True)
    fake_target.reset_log()

    report = sync()

    assert report.ok, report.failed
    assert [m for m, _ in writes(fake_target)] == ["POST"]
    assert list(fake_target.comments) == [comment.pk]
    assert SyncTarget.objects.get().rewrites == {"comment": ["name"]}


@pytest.mark.parametrize("ids", ["kept", "assigned", "string"])
def test_a_lost_create_never_takes_a_record_that_differs_from_it_only_in_case(
    fake_target, make_post, sync, ids
):
    fake_target.assign_ids = ids == "assigned"
    fake_target.string_ids = ids == "string"
    theirs = {"id": "t1" if ids == "string" else 1000, "userId": 1, "title": "hello world"}
    fake_target.load(posts=[{**theirs, "body": "Some text"}], comments=[])
    post = make_post(user_id=1, title="Hello World", body="some text")
    fake_target.drop(method="POST", times=1)  # reset before the target applied it

    assert sync().ok
    post.body = "edited"
    post.save()
    assert sync().ok

    assert fake_target.posts[theirs["id"]] == {**theirs, "body": "Some text"}
    assert records(fake_target, "posts")[1]["body"] == "edited"
    assert SyncTarget.objects.get().rewrites == {}


@pytest.mark.parametrize("answer", ["without its id", "lost"])
def test_a_record_of_someone_else_under_our_id_is_never_taken_on_a_target_that_picks_ids(
    fake_target, make_post, sync, answer
):
    fake_target.assign_ids = True
    post = make_post(user_id=9, title="same", body="same body")
    foreign = {"id": post.pk, "userId": 9, "title": "same", "body": "same body"}
    fake_target.load(posts=[foreign, {"id": post.pk + 1, "userId": 9, "title": "x"}], comments=[])
    if answer == "lost":
        fake_target.drop(method="POST", times=1, after_processing=True)
    else:
        fake_target.answers_without_ids = True

    assert sync().ok
    post.title = "edited"
    post.save()
    assert sync().ok

    assert fake_target.posts[post.pk] == foreign
    assert state_of(post).remote_id == post.pk + 2


def test_a_create_answered_without_its_id_is_looked_for_not_sent_again_each_run(
    string_target, make_post, make_comment, sync
):
    string_target.load(posts=[{"id": 1, "userId": 1, "title": "t", "body": "b"}], comments=[])
    call_command("import_initial_data", "--url", string_target.url, stdout=StringIO())
    string_target.rewrite = {"email": str.lower}
    string_target.answers_without_ids = True
    make_comment(Post.objects.get(), name="mine", email="Bob@Example.com")

    for _ in range(4):
        sync()

    assert len([c for c in string_target.comments.values() if c["name"] == "mine"]) == 1
    assert pending_count() == 0


def test_a_create_that_is_never_found_is_parked_after_the_attempts_with_the_reason(
    fake_target, make_post, sync
):
    """json-server 0.17 answers "duplicate id" for a record it holds under our id; when no
    lookup finds ours, the entity is parked instead of being sent to for ever."""
    post = make_post(title="ours")
    fake_target.load(
        posts=[{"id": post.pk, "userId": 9, "title": "theirs", "body": "x"}], comments=[]
    )

    reports = [sync(max_attempts=3) for _ in range(4)]

    state = state_of(post)
    assert state.parked_at is not None
    assert "duplicate id" in state.last_error and "not found" in state.last_error
    assert [len(r.failed) for r in reports] == [1, 1, 1, 1]
    assert reports[-1].failed[0].error == "parked after repeated failures"
    assert fake_target.posts[post.pk]["title"] == "theirs"


# --- --full settles a delete only once it is delivered ----------------------------------------


@pytest.fixture
def landed_but_unconfirmed(fake_target, make_post):
    """A post whose create landed under an id the target chose, unconfirmed, and then deleted."""
    fake_target.assign_ids = True
    post = make_post(title="landed")
    sent = post_record(post)
    flag(post, sent)
    fake_target.posts[40] = {**sent, "id": 40}
    pk = post.pk
    post.delete()
    return pk


def test_full_keeps_a_failed_delete_pending_and_delivers_it_later(
    fake_target, landed_but_unconfirmed, sync
):
    fake_target.fail(503, method="DELETE")

    first = sync(full=True)

    assert not first.ok
    assert pending_count() == 2  # created and deleted: still to deliver
    state = EntitySyncState.objects.get(entity_pk=landed_but_unconfirmed)
    assert "503" in state.last_error
    fake_target.clear_faults()

    assert sync(full=True).ok
    assert fake_target.posts == {}
    assert pending_count() == 0


def test_a_full_run_killed_during_the_delete_leaves_it_for_the_next_run(
    fake_target, landed_but_unconfirmed, sync
):
    from sync.tests.test_sync_stateful import Killed, KilledAfter

    with (
        KilledAfter(writes=0, base_url=fake_target.url, timeout=2.0, retries=0) as client,
        pytest.raises(Killed),
    ):
        sync(client=client, full=True)

    assert pending_count() == 2
    assert sync().ok
    assert fake_target.posts == {}
    assert pending_count() == 0


def test_full_holds_back_a_comment_whose_post_was_not_created(
    string_target, make_post, make_comment, sync
):
    post = make_post(title="p")
    make_comment(post, name="c")
    string_target.drop(method="POST", path="/posts", times=3)  # every try of the post's create

    first = sync(full=True)

    assert not first.ok
    assert [f.error for f in first.failed if f.entity.kind is Kind.COMMENT] == [
        f"held back: post {post.pk} is not on the target"
    ]
    assert string_target.comments == {}
    assert sync().ok
    assert target_state(string_target) == expected_target()


def test_creates_a_stopped_full_run_never_sent_cost_the_next_run_no_wait(string_target, make_post):
    for n in range(12):
        make_post(title=f"p{n}")
    string_target.stall(0.3, method="POST")
    with TargetApiClient(base_url=string_target.url, timeout=5.0, retries=0) as client:
        stopped = sync_changes(
            client=client, options=SyncOptions(concurrency=1, time_budget=0.5), full=True
        )
    string_target.clear_faults()
    assert stopped.stopped_early

    with TargetApiClient(base_url=string_target.url, timeout=5.0, retries=0) as client:
        report = sync_changes(client=client, options=SyncOptions(concurrency=4, time_budget=2.0))

    assert report.ok, report.failed[:1]
    assert len(string_target.posts) == 12


# --- A POST that lands after its run died -------------------------------------------------------


def test_a_lookup_finds_a_post_that_lands_after_the_run_that_sent_it_died(
    fake_target, make_post, make_comment, sync, target_client
):
    post = make_post()
    assert sync().ok
    comment = make_comment(post)
    sent = comment_record(comment, post_remote_id=state_of(post).remote_id)
    died = SyncRun.objects.create(mode=SyncRun.Mode.INCREMENTAL)  # killed: never finished
    flag(comment, sent, run_id=died.pk)
    comment.delete()

    def land_late() -> None:  # the POST it sent, still in flight
        time.sleep(0.8)
        with fake_target._lock:
            fake_target.comments[sent["id"]] = dict(sent)

    landing = threading.Thread(target=land_late)
    landing.start()
    report = sync()
    landing.join()

    assert report.ok, report.failed
    assert fake_target.comments == {}
    assert pending_count() == 0
    assert SyncRun.objects.get(pk=died.pk).status == SyncRun.Status.ABANDONED


def test_an_earlier_create_that_can_still_land_waits_for_the_next_run_within_a_budget(
    fake_target, make_post, sync
):
    post = make_post()
    died = SyncRun.objects.create(mode=SyncRun.Mode.INCREMENTAL)
    flag(post, post_record(post), run_id=died.pk)
    with TargetApiClient(base_url=fake_target.url, timeout=5.0, retries=0) as client:
        report = sync(client=client, time_budget=1.0)

    assert not report.ok
    assert "may still land" in report.failed[0].error
    assert writes(fake_target) == []
    assert state_of(post).create_unconfirmed and state_of(post).attempts == 0


# --- A target that keeps nothing (the public JSONPlaceholder) ------------------------------------


def test_a_target_that_keeps_nothing_corrupts_no_mapping_and_runs_stay_bounded(
    fake_target, make_post, sync
):
    fake_target.stores_nothing = True
    fake_target.load_generated(100, comments_per_post=0)
    posts = [make_post(title=f"new {n}") for n in range(20)]

    first = sync(max_attempts=2)

    assert remote_ids(Kind.POST) == {posts[0].pk: 101}
    assert len(first.failed) == 19
    assert all("target conflict" in f.error for f in first.failed)
    assert len(first.notices) == 1 and "does not keep what it is sent" in first.notices[0]

    for post in posts:
        post.title = "edited"
        post.save()
    calls = []
    for _ in range(4):
        fake_target.reset_log()
        sync(max_attempts=2)
        calls.append(len(fake_target.calls()))
    parked = EntitySyncState.objects.filter(parked_at__isnull=False).count()
    assert parked == 20
    assert calls[-1] == 0, calls  # everything parked: nothing is sent for ever
    assert max(calls) <= 20 * 3  # a PUT retried by the client, a POST and a lookup at most
    assert len(set(remote_ids(Kind.POST).values())) == len(remote_ids(Kind.POST))


# --- The mapping belongs to one target -------------------------------------------------------


def test_an_incremental_run_against_another_target_sends_nothing_and_names_full(
    fake_target, seed, make_post
):
    from fake_target import FakeTarget

    [post], _ = seed(1)
    SyncTarget.adopt(fake_target.url.lower())
    post.title = "edited"
    post.save()
    with FakeTarget() as other:
        code, lines, error = command(other.url)

        assert code == 1
        assert lines == []
        assert "--full" in error and fake_target.url in error and other.url in error
        assert "\n" not in error
        assert other.calls() == []
    assert pending_count() == 1


def test_full_adopts_a_new_target_and_incremental_runs_then_go_there(fake_target, seed):
    from fake_target import FakeTarget

    [post, _], _ = seed(2)
    SyncTarget.adopt(fake_target.url)
    with FakeTarget() as other:
        code, lines, _ = command(other.url, "--full")
        assert code == 0
        assert lines[0] == f"The sync state now describes the target {other.url}"
        assert len(other.posts) == 2
        post.title = "edited"
        post.save()

        assert command(other.url)[0] == 0
        assert other.posts[post.pk]["title"] == "edited"
        assert command(fake_target.url)[0] == 1


@pytest.mark.parametrize("answer", ["unreachable", "html", "500"])
def test_a_full_run_to_a_target_it_cannot_read_leaves_the_target_described_as_it_was(
    fake_target, seed, answer
):
    """A mistyped --full --url changes nothing: incremental runs still go where they went."""
    from fake_target import FakeTarget

    [post], _ = seed(1)
    SyncTarget.adopt(fake_target.url)
    post.title = "edited"
    post.save()
    with FakeTarget() as other:
        if answer == "html":
            other.answer(200, body="<html>Welcome</html>", content_type="text/html")
        elif answer == "500":
            other.fail(500)
        url = other.url if answer != "unreachable" else f"http://127.0.0.1:{free_port()}"

        code, _, error = command(url, "--full")

        assert code == 1 and "\n" not in error
        assert writes(other) == []
    assert SyncTarget.objects.get().url == fake_target.url
    assert command(fake_target.url)[0] == 0
    assert fake_target.posts[post.pk]["title"] == "edited"


def test_a_full_run_to_a_new_target_stopped_while_it_reads_changes_nothing(fake_target, seed):
    """Its time budget spent (or a signal) before its plan goes ahead: no target taken on."""
    from fake_target import FakeTarget

    [post], _ = seed(1)
    SyncTarget.adopt(fake_target.url)
    post.title = "edited"
    post.save()
    with FakeTarget() as other:
        other.stall(1.0, method="GET", path="/comments")
        code, _, error = command(other.url, "--full", "--time-budget", "0.3")

        assert code == 1, error
        assert writes(other) == []
    assert SyncTarget.objects.get().url == fake_target.url
    assert command(fake_target.url)[0] == 0
    assert fake_target.posts[post.pk]["title"] == "edited"


def test_a_full_run_to_a_new_target_that_stops_early_leaves_only_full_runs_allowed(
    fake_target, make_post
):
    from fake_target import FakeTarget

    fake_target.assign_ids = True
    theirs = {"id": 1, "userId": 9, "title": "theirs", "body": "not ours"}
    fake_target.load(posts=[theirs], comments=[])
    posts = [make_post(title=f"p{n}") for n in range(3)]
    assert command(fake_target.url)[0] == 0  # ours are 2, 3 and 4 there
    with FakeTarget(assign_ids=True) as new:
        new.stall(0.3, method="POST")
        code, _, _ = command(new.url, "--full", "--time-budget", "0.2", "--concurrency", "1")
        assert code == 1
        for post in posts:
            post.title += " edited"
            post.save()

        back, _, error = command(fake_target.url)
        assert back == 1 and "began and did not go through" not in error
        assert "describes the target " + new.url in error
        again, _, error = command(new.url)
        assert again == 1 and "did not go through" in error and "--full" in error
        assert fake_target.posts[1] == theirs
        new.clear_faults()
        assert command(new.url, "--full")[0] == 0
        assert command(new.url)[0] == 0
        assert sorted(r["title"] for r in new.posts.values()) == [
            "p0 edited",
            "p1 edited",
            "p2 edited",
        ]


def test_full_deletes_at_most_the_cap_of_records_no_row_holds_unless_allowed(
    fake_target, seed, settings
):
    settings.SYNC_FULL_MAX_DELETES = 3
    [post], _ = seed(1)
    first = post.pk + 1000  # records nobody holds, whatever ids the rows were given
    fake_target.posts.update(
        {
            n: {"id": n, "userId": 9, "title": f"theirs {n}", "body": "x"}
            for n in range(first, first + 5)
        }
    )

    code, lines, error = command(fake_target.url, "--full")

    assert code == 1
    assert "would delete 5 records" in error and "--allow-deletes" in error
    assert f"posts/{first}" in error and f"posts/{first + 4}" in error
    assert writes(fake_target) == []
    code, lines, _ = command(fake_target.url, "--full", "--dry-run")
    assert code == 0
    assert f"DELETE /posts/{first + 4}  (not in the database)" in lines
    assert any("--allow-deletes" in line for line in lines)

    assert command(fake_target.url, "--full", "--allow-deletes")[0] == 0
    assert len(fake_target.posts) == 1


# --- The output tells the truth ------------------------------------------------------------------


def test_a_run_that_delivered_everything_is_ok_though_its_budget_ran_out_meanwhile(
    fake_target, seed, sync
):
    [post], _ = seed(1)
    post.title = "edited"
    post.save()
    fake_target.latency = 0.6

    report = sync(time_budget=0.3)

    assert report.ok and report.stopped_early == ""
    assert SyncRun.objects.get(pk=report.run_id).status == SyncRun.Status.SUCCEEDED


def test_a_put_answered_404_and_created_again_is_counted_as_a_create(fake_target, seed, sync):
    [post], _ = seed(1)
    post.title = "edited"
    post.save()
    del fake_target.posts[post.pk]

    report = sync()

    assert report.ok
    assert (report.calls[Op.CREATE], report.calls[Op.UPDATE]) == (1, 0)
    assert report.summary().startswith("Synced 1 entities with 1 calls (1 created, 0 updated")
    assert SyncRun.objects.get(pk=report.run_id).calls_created == 1


def test_an_html_error_page_is_one_line_with_status_type_and_its_start(fake_target, seed):
    [post], _ = seed(1)
    post.title = "edited"
    post.save()
    page = "<!DOCTYPE html>\n<html>\n  <body>\n" + "<p>Traceback (most recent call last)</p>\n" * 40
    fake_target.answer(400, body=page, content_type="text/html", method="PUT")

    code, lines, _ = command(fake_target.url)

    assert code == 1
    [failed] = [line for line in lines if line.startswith("FAILED")]
    assert "HTTP 400 Bad Request (text/html): <!DOCTYPE html> <html> <body> <p>Traceback" in failed
    assert len(failed.split("(text/html): ")[1]) <= 100
    assert "\n" not in state_of(post).last_error
    status = StringIO()
    call_command("sync_status", stdout=status)
    assert sum("text/html" in line for line in status.getvalue().splitlines()) == 1


def test_a_run_that_was_killed_is_marked_abandoned_by_the_next_one(fake_target, seed, sync):
    seed(1)
    killed = SyncRun.objects.create(mode=SyncRun.Mode.INCREMENTAL)

    report = sync()

    killed.refresh_from_db()
    assert killed.status == SyncRun.Status.ABANDONED
    assert killed.finished_at is not None and killed.finished_at <= timezone.now()
    assert SyncRun.objects.get(pk=report.run_id).status == SyncRun.Status.SUCCEEDED
    status = StringIO()
    call_command("sync_status", stdout=status)
    assert f"#{killed.pk} " in status.getvalue() and "abandoned" in status.getvalue()
