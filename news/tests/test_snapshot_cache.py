"""Reads without Redis under `serve` (news/cache/snapshots.py): anonymous answers kept in the
worker's memory under the database snapshot they were read in, served only while that snapshot
is still the database's, so never once a write has ended, whoever made it."""

import psycopg
import pytest

from news.cache import reads, snapshots
from news.models import Comment, Post
from testing.clients import asgi_get, cache_said
from testing.rows import make_comment, make_post
from testing.users import REVOCATIONS

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def other_session():
    """A session of the database's own, outside Django: another process, as far as it knows."""
    with psycopg.connect(**snapshots.connection_params(), autocommit=True) as session:
        yield session


def title_of(url: str) -> tuple[str, str | None]:
    answer = asgi_get(url)
    assert answer.status_code == 200
    return answer.json()["title"], cache_said(answer)


def settled(read):
    """read() repeated until it is answered from memory (a write anywhere in the database
    server, autovacuum's included, makes the next read a miss), at most 5 times: its last."""
    for _ in range(5):
        answer = read()
        said = cache_said(answer) if hasattr(answer, "threaded") else answer[-1]
        if said == "hit":
            break
    return answer


def test_a_read_again_is_answered_from_memory_without_django():
    post = make_post(title="Kept")
    url = f"/news/posts/{post.pk}/"
    first = asgi_get(url)

    second = settled(lambda: asgi_get(url))

    # A hit takes no thread: Django never ran (cache_said checks it).
    assert (cache_said(first), cache_said(second)) == ("miss", "hit")
    assert second.content == first.content
    assert second["ETag"] == first["ETag"]
    assert second["Content-Length"] == str(len(first.content))


@pytest.mark.parametrize(
    "write",
    [
        lambda post, session: Post.objects.filter(pk=post.pk).update(title="Changed"),
        lambda post, session: session.execute(
            "UPDATE news_post SET title = 'Changed' WHERE id = %s", [post.pk]
        ),
    ],
    ids=["django-without-signals", "another-session"],
)
def test_a_write_committed_anywhere_is_seen_by_the_next_read(other_session, write):
    post = make_post(title="Kept")
    url = f"/news/posts/{post.pk}/"
    assert settled(lambda: title_of(url)) == ("Kept", "hit")

    write(post, other_session)

    assert title_of(url) == ("Changed", "miss")
    assert settled(lambda: title_of(url)) == ("Changed", "hit")


def test_a_write_of_another_table_ends_the_answers_kept(other_session):
    post = make_post(title="Kept")
    url = f"/news/posts/{post.pk}/comments/"
    assert cache_said(settled(lambda: asgi_get(url))) == "hit"

    make_comment(post, name="New")
    answer = asgi_get(url)

    assert cache_said(answer) == "miss"
    assert [c["name"] for c in answer.json()["results"]] == ["New"]
    Comment.objects.all().delete()
    assert asgi_get(url).json()["results"] == []


def test_a_write_in_flight_is_not_seen_and_its_commit_is(other_session):
    post = make_post(title="Kept")
    url = f"/news/posts/{post.pk}/"
    title_of(url)

    with other_session.transaction():
        other_session.execute("UPDATE news_post SET title = 'Committed' WHERE id = %s", [post.pk])
        during = [title_of(url)[0] for _ in range(2)]

    assert during == ["Kept", "Kept"]
    assert title_of(url)[0] == "Committed"


def test_an_answer_read_while_a_write_ended_is_never_served(other_session, monkeypatch):
    post = make_post(title="Before")
    url = f"/news/posts/{post.pk}/"
    original = reads.ReadCache._keeping

    def a_write_ends_meanwhile(self, environ, start_response, key):
        chunks = original(self, environ, start_response, key)
        other_session.execute("UPDATE news_post SET title = 'After' WHERE id = %s", [post.pk])
        return chunks

    monkeypatch.setattr(reads.ReadCache, "_keeping", a_write_ends_meanwhile)
    first = title_of(url)
    monkeypatch.undo()

    assert first == ("Before", "miss")
    assert title_of(url) == ("After", "miss")  # "Before" is not served again


def test_a_head_and_a_conditional_read_are_answered_from_memory():
    post = make_post(title="Kept")
    url = f"/news/posts/{post.pk}/"
    etag = settled(lambda: asgi_get(url))["ETag"]

    head = settled(lambda: asgi_get(url, method="HEAD"))
    conditional = asgi_get(url, HTTP_IF_NONE_MATCH=etag)

    assert (head.status_code, head.content, cache_said(head)) == (200, b"", "hit")
    assert (conditional.status_code, conditional.content) == (304, b"")
    assert conditional["ETag"] == etag


def bearer(user) -> str:
    from rest_framework_simplejwt.tokens import RefreshToken

    return f"Bearer {RefreshToken.for_user(user).access_token}"


def token_read(url: str, token: str) -> tuple[int, str | None]:
    answer = asgi_get(url, HTTP_AUTHORIZATION=token)
    return answer.status_code, cache_said(answer)


def test_a_token_read_is_answered_from_memory_while_its_user_is_as_django_let_them_in(user):
    post = make_post(title="Kept")
    url = f"/news/posts/{post.pk}/"
    token = bearer(user)

    assert token_read(url, token) == (200, "miss")
    assert settled(lambda: token_read(url, token)) == (200, "hit")
    anonymous = asgi_get(url)
    assert cache_said(anonymous) == "miss"  # kept apart: its headers are not a token read's


def test_another_user_is_let_in_by_django_before_their_reads_come_from_memory(
    user, django_user_model
):
    post = make_post(title="Kept")
    url = f"/news/posts/{post.pk}/"
    other = bearer(django_user_model.objects.create_user("other", password="pw-12345678"))
    token = bearer(user)
    assert settled(lambda: token_read(url, token)) == (200, "hit")

    assert token_read(url, other) == (200, "miss")
    assert settled(lambda: token_read(url, other)) == (200, "hit")
    assert settled(lambda: token_read(url, token)) == (200, "hit")


@pytest.mark.parametrize("change", REVOCATIONS)
def test_a_token_revoked_is_refused_by_the_next_read(user, change):
    post = make_post(title="Kept")
    url = f"/news/posts/{post.pk}/"
    token = bearer(user)
    assert settled(lambda: token_read(url, token)) == (200, "hit")

    change(type(user).objects.get(pk=user.pk))

    assert token_read(url, token) == (401, None)


def test_nothing_is_kept_when_turned_off(settings):
    settings.NEWS_SNAPSHOT_CACHE = False
    post = make_post(title="Kept")

    answers = [asgi_get(f"/news/posts/{post.pk}/") for _ in range(2)]

    assert [(cache_said(a), a.threaded) for a in answers] == [(None, True)] * 2


def test_reads_go_to_django_while_the_snapshot_cannot_be_had(monkeypatch, caplog):
    post = make_post(title="Answered anyway")
    url = f"/news/posts/{post.pk}/"
    asgi_get(url)

    async def refused(self):
        raise psycopg.OperationalError("connection refused")

    monkeypatch.setattr(snapshots._SnapshotReader, "_query", refused)
    answers = [asgi_get(url) for _ in range(3)]

    assert [(a.status_code, a.json()["title"], a.threaded) for a in answers] == [
        (200, "Answered anyway", True)
    ] * 3
    warnings = [r for r in caplog.records if "snapshot could not be had" in r.message]
    assert len(warnings) == 1  # then paused: no question asked, no line logged


def test_the_answers_a_worker_keeps_stay_within_their_bytes(monkeypatch):
    monkeypatch.setattr(snapshots, "KEPT_BYTES", 1500)
    posts = [make_post(title=f"Post {n}", body="x" * 300) for n in range(6)]

    for post in posts:
        assert title_of(f"/news/posts/{post.pk}/") == (post.title, "miss")

    assert 0 < snapshots.kept.size <= 1500
    assert len(snapshots.kept.answers) < len(posts)
    last = f"/news/posts/{posts[-1].pk}/"
    assert settled(lambda: title_of(last)) == (posts[-1].title, "hit")
