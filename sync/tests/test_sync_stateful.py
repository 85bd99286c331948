"""A Hypothesis state machine: any mix of changes, runs, faults and crashes converges.

Rules change posts and comments through the API as a staff user (some edits change nothing, some
are reverted before the next run; comments move to another post as the admin moves them), and
run the sync
incrementally or with --full: cleanly, against a faulty target (5xx, answers lost before or
after the write was applied), or killed at a random call. After every clean run:

- the target equals the database, with no duplicate;
- no event is left pending;
- when the run before was clean too, the target received one call per entity whose record on
  the target changed, and none for the rest.

Bounded for CI; set SYNC_STATEFUL_EXAMPLES (and SYNC_STATEFUL_STEPS) for a longer search.
"""

import os
import threading

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from news.models import Comment, Post
from sync.client import TargetApiClient
from sync.errors import TargetApiError
from sync.models import EntitySyncState, ModelEvent, SyncRun
from sync.recording import recording_disabled
from sync.syncing import SyncOptions, sync_changes
from testing.sync import expected_target, pending_count, target_state, with_user

pytestmark = [pytest.mark.django_db, pytest.mark.timeout(300)]

EXAMPLES = int(os.environ.get("SYNC_STATEFUL_EXAMPLES", "12"))
STEPS = int(os.environ.get("SYNC_STATEFUL_STEPS", "25"))
FAULTS = [
    "5xx",
    "lost before the write",
    "lost after the write",
    "every answer to a write lost",
    "lookups fail",
    "creates applied after a 502",
    "a page that is not JSON",
    "the password refused",
    "killed",
]


class Killed(BaseException):
    """Stands for kill -9: raised in the middle of a run, so nothing after it is recorded."""


class KilledAfter(TargetApiClient):
    """A client whose process 'dies' when it is about to send write number `writes` + 1."""

    def __init__(self, *, writes: int, **options) -> None:
        super().__init__(**options)
        self.writes_left = writes
        self.lock = threading.Lock()

    def _request(self, method, url, **kwargs):
        if method != "GET":
            with self.lock:
                self.writes_left -= 1
                if self.writes_left < 0:
                    raise Killed()
        return super()._request(method, url, **kwargs)


def make_machine(target, api_client, *, ids: str):
    # The target asks for a user and password, as many real ones do: sent in every call.
    target.credentials = ("sync", "s@fe word")
    client_options = {
        "base_url": with_user(target.url, "sync:s%40fe%20word"),
        "timeout": 2.0,
        "retries": 1,
        "backoff_factor": 0.001,
        "backoff_max": 0.002,
    }

    class SyncMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            with recording_disabled():
                Comment.objects.all().delete()
                Post.objects.all().delete()
            ModelEvent.objects.all().delete()
            EntitySyncState.objects.all().delete()
            SyncRun.objects.all().delete()
            target.clear_faults()
            target.load(posts=[], comments=[])
            target.reset_log()
            target.assign_ids = ids == "assigns-ids"
            target.string_ids = ids == "string-ids"
            target._random.seed(0)  # faults that hit a share of calls repeat between examples
            self.counter = 0
            # The target's records after the last clean run; None after a faulty or killed one.
            self.after_clean: dict | None = target_state(target)

        def fresh(self, what: str) -> str:
            self.counter += 1
            return f"{what} {self.counter}"

        # --- Changes, through the API ----------------------------------------------------------

        def api(self, method: str, path: str, body: dict | None = None) -> None:
            response = getattr(api_client, method)(path, body, format="json")
            assert response.status_code < 300, (method, path, response.status_code)

        @rule()
        def create_post(self):
            self.api("post", "/news/posts/", {"title": self.fresh("title"), "body": "body"})

        @rule(data=st.data())
        def create_comment(self, data):
            posts = list(Post.objects.values_list("pk", flat=True))
            if posts:
                post = data.draw(st.sampled_from(posts))
                body = {"name": self.fresh("name"), "email": "a@example.com", "body": "c"}
                self.api("post", f"/news/posts/{post}/comments/", body)

        @rule(data=st.data(), kind=st.sampled_from(["change", "no-op", "change and revert"]))
        def edit(self, data, kind):
            rows = list(Post.objects.all()) + list(Comment.objects.all())
            if not rows:
                return
            row = data.draw(st.sampled_from(rows), label="row")
            path, field = (
                (f"/news/posts/{row.pk}/", "title")
                if isinstance(row, Post)
                else (f"/news/comments/{row.pk}/", "name")
            )
            original = getattr(row, field)
            if kind != "no-op":
                self.api("patch", path, {field: self.fresh(field)})
            if kind != "change":
                self.api("patch", path, {field: original})

        @rule(data=st.data())
        def move_comment(self, data):
            """As the admin may (the API keeps a comment on its post): onto another post."""
            comments = list(Comment.objects.all())
            posts = list(Post.objects.values_list("pk", flat=True))
            if comments and len(posts) > 1:
                comment = data.draw(st.sampled_from(comments), label="moved")
                others = [pk for pk in posts if pk != comment.post_id]
                comment.post_id = data.draw(st.sampled_from(others), label="onto")
                comment.save()

        @rule(data=st.data())
        def delete(self, data):
            rows = list(Post.objects.all()) + list(Comment.objects.all())
            if rows:
                row = data.draw(st.sampled_from(rows), label="deleted")
                kind = "posts" if isinstance(row, Post) else "comments"
                self.api("delete", f"/news/{kind}/{row.pk}/")

        # --- Runs ---------------------------------------------------------------------------------

        @rule(full=st.booleans())
        def clean_run(self, full):
            before = self.after_clean
            target.reset_log()
            dry = self.sync(TargetApiClient(**client_options), full=full, concurrency=3, dry=True)
            assert not [r for r in target.calls() if r.is_write]
            target.reset_log()

            report = self.sync(TargetApiClient(**client_options), full=full, concurrency=3)

            assert report.ok, report.failed
            assert target_state(target) == expected_target()
            assert pending_count() == 0
            after = target_state(target)
            if before is not None:
                writes = [r for r in target.calls() if r.is_write]
                assert len(writes) == changed_records(before, after), writes
                # The dry run said so: the calls it planned are the ones the run made.
                assert len(dry.planned) == len(writes), (dry.planned, writes)
            self.after_clean = after

        @rule(full=st.booleans(), fault=st.sampled_from(FAULTS), writes=st.integers(0, 6))
        def troubled_run(self, full, fault, writes):
            self.after_clean = None
            client = TargetApiClient(**client_options)
            if fault == "5xx":
                target.fail(503, share=0.3)
            elif fault == "lost before the write":
                target.drop(share=0.3, writes_only=True)
            elif fault == "lost after the write":
                target.drop(share=0.3, writes_only=True, after_processing=True)
            elif fault == "every answer to a write lost":  # applied, never answered
                target.drop(writes_only=True, after_processing=True)
            elif fault == "creates applied after a 502":  # a proxy gave up, the server went on
                target.fail(502, share=0.5, method="POST", applied_after=0.2)
            elif fault == "a page that is not JSON":  # a proxy's own page: nothing written
                page = "<html><body>Welcome to nginx!</body></html>"
                target.answer(200, body=page, content_type="text/html", writes_only=True)
            elif fault == "the password refused":  # 401 on every call: no entity's fault
                wrong = with_user(target.url, "sync:wrong")
                client = TargetApiClient(**{**client_options, "base_url": wrong})
            elif fault == "lookups fail":  # creates whose answers are lost stay unconfirmed
                target.drop(share=0.5, writes_only=True, after_processing=True)
                target.fail(503, method="GET")
            else:
                client = KilledAfter(writes=writes, **client_options)
            try:
                # One call at a time, so a fault hits the same calls when an example is replayed.
                self.sync(client, full=full, concurrency=1)
            except Killed:
                pass
            except TargetApiError:
                assert full  # a full run that cannot read the target stops before sending
            finally:
                target.clear_faults()

        def sync(self, client, *, full, concurrency, dry=False):
            options = SyncOptions(concurrency=concurrency, batch_size=4)
            with client:
                return sync_changes(client=client, options=options, full=full, dry_run=dry)

        @invariant()
        def no_two_entities_hold_one_record(self):
            held = EntitySyncState.objects.filter(remote_key__isnull=False)
            pairs = list(held.values_list("entity_table", "remote_key"))
            assert len(pairs) == len(set(pairs))

    return SyncMachine


def changed_records(before: dict, after: dict) -> int:
    """Records added, removed or changed on the target between two states."""
    count = 0
    for name in ("posts", "comments"):
        old = {r["id"]: r for r in before[name]}
        new = {r["id"]: r for r in after[name]}
        count += sum(1 for key in old.keys() | new.keys() if old.get(key) != new.get(key))
    return count


@pytest.mark.parametrize("ids", ["keeps-ids", "assigns-ids", "string-ids"])
def test_any_mix_of_changes_runs_faults_and_crashes_converges(fake_target, staff_client, ids):
    """On json-server 0.17 (which keeps the ids it is sent), on a target that assigns its own
    integer ids, and on one that gives string ids as json-server 1.0 does."""
    machine = make_machine(fake_target, staff_client, ids=ids)
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=STEPS,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        ),
    )
