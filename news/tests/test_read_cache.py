"""The read cache (news/cache/): anonymous reads answered from Redis, never stale after a
write has been answered, and the same answers without Redis."""

import asyncio
import json
import os
import subprocess
import sys
import time

import pytest
import redis
from django.core.management import call_command
from django.db import transaction

from news.cache import CacheUnavailable, start_fresh
from news.cache import store as cache_store
from news.models import Comment, Post
from sync.models import ModelEvent
from testing.clients import WsgiAnswer, asgi_get, cache_said, wsgi_get
from testing.garbage_redis import DoublingRedis, GarbageRedis, SlowForgetfulRedis
from testing.redis_server import RedisServer
from testing.rows import make_comment, make_post

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("served")]

# The read_cache fixture (conftest.py) turns the cache on, on a Redis database of its own.

# What a write Redis cannot be told of is answered, by the API and the admin alike (docs/api.md).
REFUSED = (
    "The cache of reads (Redis) cannot be reached, so this change could not be made without "
    "leaving stale answers behind; nothing was changed. Try again shortly."
)


get = wsgi_get


def read(url: str, **headers) -> tuple[WsgiAnswer, str | None]:
    """The answer of the application, and what the cache said of it."""
    answer = get(url, **headers)
    return answer, cache_said(answer)


def cached_post(title: str) -> tuple[Post, str]:
    """A post whose answer the cache holds: read once, then a hit; and its URL."""
    post = make_post(title=title)
    url = f"/news/posts/{post.pk}/"
    read(url)
    assert read(url)[1] == "hit"
    return post, url


def test_a_redis_back_from_an_older_snapshot_serves_nothing_a_write_changed_since(
    redis_with_snapshots,
):
    """A Redis with persistence that restarts brings back the answers stored before its last
    snapshot with their generations: none of them is served."""
    post, url = cached_post("Before")
    redis_with_snapshots.save()
    post.title = "After"
    post.save()
    assert read(url)[0].json()["title"] == "After"

    redis_with_snapshots.restart()

    answer, said = read(url)
    assert (answer.status_code, said, answer.json()["title"]) == (200, "miss", "After")
    assert read(url)[1] == "hit"


@pytest.mark.parametrize("opened", ["redis-py", "event loop"])
def test_a_redis_that_came_back_drops_the_keys_of_this_database_only(read_cache, opened):
    """What RENEW drops on a new connection when Redis's run is not the one named: this
    database's answers, stamps and generations; not its writes in flight, nor any key of
    another database on the same Redis, however the prefix reads as a pattern."""
    store = cache_store.ReadCacheStore(read_cache.url, "news:x*:", ttl=60, max_bytes=1000)
    kept = ["news:x*:writing:news_post", "news:xy:entry:a", "news:x:entry:a"]
    dropped = ["news:x*:entry:a", "news:x*:stamp:user:1", "news:x*:generation:news_post"]
    client = read_cache.client
    try:
        client.set("news:x*:run", "an earlier run")
        for key in kept + dropped:
            client.set(key, "1")

        if opened == "redis-py":
            store.client.ping()
        else:
            asyncio.run(store.lookup_async("b", ("news_comment",)))

        assert [key for key in kept + dropped if client.exists(key)] == kept
        lineage = f"{client.info('server')['run_id']}.{client.info('replication')['master_replid']}"
        assert client.get("news:x*:run") == lineage.encode()
    finally:
        client.delete("news:x*:run", "news:x*:generation:news_comment", *kept, *dropped)


@pytest.fixture
def two_redis_servers(settings, tmp_path):
    """Two redis-servers of the test's own (testing/redis_server.py), the cache on the first."""
    servers = [RedisServer(tmp_path / name) for name in ("first", "second")]
    for server in servers:
        server.directory.mkdir()
        server.start()
    settings.REDIS_URL = servers[0].url
    yield servers
    for server in servers:
        server.stop()


def test_a_replica_left_behind_never_answers_what_a_write_changed_since(
    two_redis_servers, settings
):
    """The cache pointed at a replica that lost its master before a write (a failover that
    switched the address before the promotion): Redis takes no writes there, so RENEW cannot
    drop what is old; the cache is not used, and the read comes from the database."""
    master, replica = two_redis_servers
    post, url = cached_post("Before")
    replica.follow(master)
    replica.cut_off()
    post.title = "After"
    post.save()

    settings.REDIS_URL = replica.url

    answer, said = read(url)
    assert (answer.status_code, answer.json()["title"]) == (200, "After")
    assert said != "hit"


def test_data_replaced_under_open_connections_is_told_within_a_second(
    two_redis_servers, monkeypatch
):
    """A master made a replica of a node that lags behind it (Sentinel's failback after a
    partition) takes that node's data without closing a connection: what was stored is checked
    again at least every RECHECK_SECONDS, on the connections already open."""
    monkeypatch.setattr(cache_store, "RECHECK_SECONDS", 0.0)
    master, lagging = two_redis_servers
    post, url = cached_post("Before")
    lagging.follow(master)
    lagging.cut_off()
    lagging.follow(None)  # promoted, with what it had
    post.title = "After"
    post.save()
    assert read(url)[0].json()["title"] == "After"

    master.follow(lagging)  # the old master takes the promoted node's data: "Before"

    answer, said = read(url)
    assert (answer.status_code, answer.json()["title"]) == (200, "After")
    assert said != "hit"


@pytest.mark.parametrize("opened", ["redis-py", "event loop"])
def test_a_redis_refusing_info_for_a_while_is_not_used_unchecked(read_cache, opened, caplog):
    """LOADING (a Redis still reading its snapshot), BUSY, MISCONF: not a Redis that will not
    say which data it holds, only one that cannot now. The connection fails; nothing is read."""
    store_of = cache_store.ReadCacheStore
    with GarbageRedis(b"-LOADING Redis is loading the dataset in memory\r\n") as loading:
        store = store_of(loading.url, "news:loading:", ttl=60, max_bytes=1000)
        if opened == "redis-py":
            looked_up = store.lookup("a", ("news_post",))
        else:
            looked_up = asyncio.run(store.lookup_async("a", ("news_post",)))

    assert looked_up == (None, None)
    assert "could not read" in caplog.text
    assert "refused to say" not in caplog.text


@pytest.mark.parametrize("refusal", ["renamed", "acl"])
def test_a_redis_that_will_not_say_which_data_it_holds_still_serves_the_cache(
    settings, tmp_path, caplog, monkeypatch, refusal
):
    """A Redis that refuses INFO (renamed away; or denied to the service's user by an ACL that
    leaves out @dangerous, as Redis's own docs suggest) cannot say whether its data came back
    from before: the cache works as before, writes too, and the log says what to do, once."""
    monkeypatch.setattr(cache_store, "RECHECK_SECONDS", 0.0)
    renamed = ("--rename-command", "INFO", "") if refusal == "renamed" else ()
    server = RedisServer(tmp_path, *renamed)
    server.start()
    url = server.url
    if refusal == "acl":
        server.client().acl_setuser(
            "app", enabled=True, passwords=["+apppw"], keys=["~*"], channels=["&*"],
            commands=["+@all", "-@dangerous"],
        )  # fmt: skip
        url = url.replace("redis://", "redis://app:apppw@")
    try:
        settings.REDIS_URL = url
        post = make_post(title="Cached")
        path = f"/news/posts/{post.pk}/"

        assert [read(path)[1] for _ in range(3)] == ["miss", "hit", "hit"]
        post.title = "Changed"
        post.save()  # told to Redis: no CacheUnavailable
        assert read(path)[0].json()["title"] == "Changed"
    finally:
        server.stop()
    refused = [r for r in caplog.records if "refused to say which data it holds" in r.message]
    assert len(refused) == 1


def test_a_second_anonymous_read_is_answered_from_redis_without_the_database(
    read_cache, django_assert_num_queries
):
    post = make_post(title="Cached")
    url = f"/news/posts/{post.pk}/"
    first, first_cache = read(url)

    with django_assert_num_queries(0):
        second, second_cache = read(url)

    assert (first.status_code, first_cache) == (200, "miss")
    assert (second.status_code, second_cache) == (200, "hit")
    assert second.content == first.content
    assert second["Content-Type"] == "application/json"
    assert second["Content-Length"] == str(len(first.content))
    assert second["ETag"] == first["ETag"]
    assert second["X-Frame-Options"] == first["X-Frame-Options"]


@pytest.mark.parametrize(
    "url",
    [
        "/news/posts/{post}/",
        "/news/posts/",
        "/news/posts/?page=1&page_size=1",
        "/news/posts/?all=true",
        "/news/posts/{post}/comments/",
        "/news/posts/{post}/comments/?all=true",
    ],
)
def test_an_edit_answered_is_seen_by_the_next_read(read_cache, api_client, url):
    post = api_client.post("/news/posts/", {"title": "Before", "body": ""}).json()
    api_client.post(f"/news/posts/{post['id']}/comments/", {"name": "n", "email": "a@b.cd"})
    url = url.format(post=post["id"])
    for _ in range(3):
        read(url)
    assert read(url)[1] == "hit"

    edit = api_client.patch(f"/news/posts/{post['id']}/", {"title": "After"})
    assert edit.status_code == 200
    api_client.post(f"/news/posts/{post['id']}/comments/", {"name": "second", "email": "a@b.cd"})
    after, cache = read(url)

    assert cache == "miss"
    if "comments" in url:
        assert "second" in after.content.decode()
    else:
        assert "After" in after.content.decode() and "Before" not in after.content.decode()


def test_create_and_delete_change_lists_and_details(read_cache, api_client):
    post = api_client.post("/news/posts/", {"title": "One"}).json()
    for _ in range(2):
        read("/news/posts/?all=true")
        read(f"/news/posts/{post['id']}/")

    created = api_client.post("/news/posts/", {"title": "Two"}).json()
    assert [p["title"] for p in read("/news/posts/?all=true")[0].json()] == [
        "One",
        "Two",
    ]
    assert api_client.delete(f"/news/posts/{post['id']}/").status_code == 204

    assert read(f"/news/posts/{post['id']}/")[0].status_code == 404
    assert [p["id"] for p in read("/news/posts/?all=true")[0].json()] == [created["id"]]


def test_a_comment_write_leaves_post_answers_cached_and_a_post_delete_ends_its_comments(
    read_cache, api_client
):
    post = api_client.post("/news/posts/", {"title": "One"}).json()
    comment = api_client.post(
        f"/news/posts/{post['id']}/comments/", {"name": "c", "email": "a@b.cd"}
    ).json()
    for _ in range(2):
        read(f"/news/posts/{post['id']}/")
        read(f"/news/comments/{comment['id']}/")

    api_client.patch(f"/news/comments/{comment['id']}/", {"name": "changed"})
    assert read(f"/news/posts/{post['id']}/")[1] == "hit"
    assert read(f"/news/comments/{comment['id']}/")[0].json()["name"] == "changed"

    read(f"/news/comments/{comment['id']}/")
    api_client.delete(f"/news/posts/{post['id']}/")
    assert read(f"/news/comments/{comment['id']}/")[0].status_code == 404


def test_a_rolled_back_write_does_not_keep_the_next_one_from_ending_entries(read_cache):
    post = make_post(title="Kept")
    url = f"/news/posts/{post.pk}/"
    for _ in range(2):
        read(url)
    with pytest.raises(RuntimeError), transaction.atomic():
        Post.objects.filter(pk=post.pk).update(title="Rolled back")
        raise RuntimeError
    # Its lease keeps the cache off posts until it runs out: fresh answers, from the database.
    assert read(url)[0].json()["title"] == "Kept"
    assert read(url)[1] is None

    with transaction.atomic():
        with pytest.raises(RuntimeError), transaction.atomic():
            make_post(title="In a savepoint")
            raise RuntimeError
        Post.objects.filter(pk=post.pk).update(title="Committed")

    assert read(url)[0].json()["title"] == "Committed"


def test_bulk_writes_and_flush_end_entries(read_cache):
    post = make_post()
    make_comment(post=post, name="one")
    url = "/news/comments/?all=true"
    for _ in range(2):
        read(url)

    Comment.objects.bulk_create([Comment(post=post, name="two", email="a@b.cd")])
    assert [c["name"] for c in read(url)[0].json()] == ["one", "two"]
    Comment.objects.update(name="three")
    assert {c["name"] for c in read(url)[0].json()} == {"three"}

    read(url)
    call_command("flush", "--noinput")
    assert read(url)[0].json() == []


def test_a_client_holding_the_answer_gets_304(read_cache):
    post = make_post()
    url = f"/news/posts/{post.pk}/"
    first = get(url)  # not cached yet: ConditionalGetMiddleware's ETag
    assert get(url, HTTP_IF_NONE_MATCH=first["ETag"]).status_code == 304
    read(url)

    hit = get(url, HTTP_IF_NONE_MATCH=f'"other", W/{first["ETag"]}')

    assert (hit.status_code, hit["ETag"], hit.content) == (304, first["ETag"], b"")
    Post.objects.filter(pk=post.pk).update(title="New")
    assert get(url, HTTP_IF_NONE_MATCH=first["ETag"]).status_code == 200


@pytest.mark.parametrize(
    ("url", "headers", "status"),
    [
        ("item", {"HTTP_IF_MATCH": '"not-its-etag"'}, 412),
        ("item", {"HTTP_IF_UNMODIFIED_SINCE": "Mon, 01 Jan 2001 00:00:00 GMT"}, 412),
        ("item", {"HTTP_IF_MODIFIED_SINCE": "Fri, 01 Jan 2100 00:00:00 GMT"}, 304),
        # A list has no modification date: If-Unmodified-Since is ignored (RFC 9110, 13.1.4).
        ("list", {"HTTP_IF_UNMODIFIED_SINCE": "Fri, 01 Jan 2100 00:00:00 GMT"}, 200),
        ("list", {"HTTP_IF_UNMODIFIED_SINCE": "Mon, 01 Jan 2001 00:00:00 GMT"}, 200),
    ],
)
def test_a_conditional_read_gets_the_same_answer_from_the_cache_as_from_django(
    read_cache, url, headers, status
):
    post = make_post(title="Conditional")
    url = f"/news/posts/{post.pk}/" if url == "item" else "/news/posts/?page_size=3"
    first = get(url, **headers)  # not cached yet: Django answers
    read(url)
    assert read(url)[1] == "hit"

    again, loop = get(url, **headers), asgi_get(url, **headers)

    assert [a.status_code for a in (first, again, loop)] == [status] * 3
    if status == 412:
        assert first.json() == {
            "detail": "The item is not as If-Match or If-Unmodified-Since says: nothing is sent."
        }
        assert again.json() == first.json()


def test_a_hit_on_the_event_loop_answers_what_a_hit_in_a_thread_does(read_cache):
    post = make_post(title="Looked up on the loop")
    url = f"/news/posts/{post.pk}/"
    read(url)
    in_thread = wsgi_get(url)

    hit, head = asgi_get(url), asgi_get(url, method="HEAD")
    held = asgi_get(url, HTTP_IF_NONE_MATCH=in_thread["ETag"])

    assert (hit.threaded, hit.status_code, hit.content) == (False, 200, in_thread.content)
    assert hit.headers == in_thread.headers
    assert (head.threaded, head.status_code, head.content) == (False, 200, b"")
    assert head.headers == in_thread.headers  # Content-Length: the GET's
    assert (held.threaded, held.status_code, held.content) == (False, 304, b"")
    assert (held["ETag"], held["X-Cache"]) == (in_thread["ETag"], "hit")


def test_a_cached_stream_keeps_its_etag(read_cache):
    make_post()
    url = "/news/posts/?all=true"
    miss, cache = read(url)
    assert cache == "miss"

    hit, cache = read(url)

    assert (cache, hit.content) == ("hit", miss.content)
    assert get(url, HTTP_IF_NONE_MATCH=hit["ETag"]).status_code == 304


def test_answers_bigger_than_the_limit_are_not_kept(read_cache, settings):
    settings.NEWS_CACHE_MAX_BYTES = 200
    post = make_post(body="x" * 300)
    for _ in range(3):
        _, cache = read("/news/posts/?all=true")
        assert cache == "miss"
        _, cache = read(f"/news/posts/{post.pk}/")
        assert cache == "miss"


def test_bad_credentials_and_content_negotiation_bypass_the_cache(read_cache):
    post = make_post()
    url = f"/news/posts/{post.pk}/"
    for _ in range(2):
        read(url)

    # Good tokens: test_token_reads.py.
    bad_token, cache = read(url, HTTP_AUTHORIZATION="Bearer nonsense")
    assert (bad_token.status_code, cache) == (401, None)
    html, _ = read(url, HTTP_ACCEPT="text/html")
    assert html.status_code == 406
    assert read(url, HTTP_ACCEPT="text/html")[0].status_code == 406


def test_a_write_in_flight_keeps_readers_off_the_cache_until_it_commits(read_cache):
    post = make_post(title="Before")
    url = f"/news/posts/{post.pk}/"
    for _ in range(2):
        read(url)

    with transaction.atomic():
        Post.objects.filter(pk=post.pk).update(title="After")
        during, cache = read(url)  # another connection would see "Before": not stored
        assert cache is None
    after, cache = read(url)

    assert (after.json()["title"], cache) == ("After", "miss")
    assert read(url)[1] == "hit"


def test_a_write_that_redis_cannot_be_told_of_is_refused_and_changes_nothing(
    read_cache, api_client, settings
):
    post = api_client.post("/news/posts/", {"title": "Before"}).json()
    url = f"/news/posts/{post['id']}/"
    for _ in range(2):
        read(url)
    events = ModelEvent.objects.count()

    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    edit = api_client.patch(url, {"title": "After"})
    created = api_client.post("/news/posts/", {"title": "New"})
    settings.REDIS_URL = read_cache.url

    assert (edit.status_code, created.status_code) == (503, 503)
    assert edit.json() == created.json() == {"detail": REFUSED}
    assert edit["Content-Type"] == "application/json"
    assert list(Post.objects.values_list("title", flat=True)) == ["Before"]
    assert ModelEvent.objects.count() == events
    assert read(url)[0].json()["title"] == "Before"


def test_reads_go_to_the_database_while_redis_does_not_answer(settings, api_client):
    post = api_client.post("/news/posts/", {"title": "Before"}).json()  # no REDIS_URL
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    url = f"/news/posts/{post['id']}/"

    answers = [read(url) for _ in range(3)]

    assert [(a.status_code, a.json()["title"], cache) for a, cache in answers] == [
        (200, "Before", None)
    ] * 3


def test_an_admin_change_that_redis_cannot_be_told_of_is_a_503(
    read_cache, settings, client, django_user_model
):
    admin = django_user_model.objects.create_superuser("root", "root@example.com", "pw-12345678")
    client.force_login(admin)
    post = make_post(title="Before")
    settings.REDIS_URL = "redis://127.0.0.1:1/0"

    answer = client.post(
        f"/admin/news/post/{post.pk}/change/", {"user_id": 1, "title": "After", "body": ""}
    )

    assert answer.status_code == 503
    assert answer.json() == {"detail": REFUSED}
    post.refresh_from_db()
    assert post.title == "Before"


def test_a_server_starting_serves_nothing_stored_before_it(read_cache):
    post = make_post()
    url = f"/news/posts/{post.pk}/"
    for _ in range(2):
        read(url)
    assert read(url)[1] == "hit"

    start_fresh()  # what manage.py serve does before its workers answer

    assert read(url)[1] == "miss"


def test_a_save_outside_a_transaction_that_redis_cannot_be_told_of_is_refused(read_cache, settings):
    post = make_post(title="Before")
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # set, and nothing listens there
    post.title = "After"

    with pytest.raises(CacheUnavailable):
        post.save()  # as manage.py shell would, in autocommit

    post.refresh_from_db()
    assert post.title == "Before"


def test_a_write_whose_commit_redis_missed_is_in_flight_only_until_it_is_told(
    read_cache, monkeypatch
):
    post = make_post(title="Before")
    url = f"/news/posts/{post.pk}/"
    for _ in range(2):
        read(url)
    told = read_cache._written

    def lost(*args, **kwargs):
        raise redis.ConnectionError("lost")

    monkeypatch.setattr(read_cache, "_written", lost)
    monkeypatch.setattr(cache_store, "PAUSE_AFTER_FAILURE", 0.0)
    with transaction.atomic():
        Post.objects.filter(pk=post.pk).update(title="After")
    assert read(url)[1] is None  # in flight, and this process has a word still to say

    monkeypatch.setattr(read_cache, "_written", told)
    answers = [read(url) for _ in range(3)]

    assert [(a.json()["title"], cache) for a, cache in answers] == [
        ("After", "miss"),
        ("After", "hit"),
        ("After", "hit"),
    ]


def test_a_request_without_a_host_is_never_answered_from_the_cache(read_cache):
    post = make_post()
    url = f"/news/posts/{post.pk}/"
    for _ in range(2):  # stored under the host the server's own name and port also give
        read(url, HTTP_HOST="testserver:80")
    assert read(url, HTTP_HOST="testserver:80")[1] == "hit"

    answer, cache = read(url, HTTP_HOST="")  # an empty Host header, or none (HTTP/1.0)

    assert (answer.status_code, cache) == (400, None)
    assert answer.json() == {"detail": "Bad request."}


# --- What Redis answers is checked ---------------------------------------------------------------


def stored_entries(store) -> list[bytes]:
    return list(store.client.scan_iter(match=f"{store.prefix}entry:*"))


@pytest.mark.parametrize(
    "garbage",
    [
        b"not json\n{}",
        b"no newline at all",
        b'{"generations": 3}\n{}',
        b'["a list"]\n{}',
        b'{"generations": [], "headers": [["Content-Type", "application/json"]]}\n{}',
        b"\xff\xfe\n{}",
    ],
    ids=["not-json", "no-newline", "wrong-types", "a-list", "no-etag", "not-utf8"],
)
def test_an_entry_that_does_not_parse_is_a_miss_answered_from_the_database_logged_once(
    read_cache, caplog, garbage
):
    post = make_post(title="From the database")
    url = f"/news/posts/{post.pk}/"
    read(url)
    (key,) = stored_entries(read_cache)
    read_cache.client.set(key, garbage)

    answers = [read(url) for _ in range(3)]

    assert [(a.status_code, a.json()["title"], cache) for a, cache in answers] == [
        (200, "From the database", "miss"),
        (200, "From the database", "hit"),
        (200, "From the database", "hit"),
    ]
    warnings = [r for r in caplog.records if r.name == "news.cache" and "entry" in r.message]
    assert len(warnings) == 1


@pytest.mark.parametrize(
    "reply",
    [b"+OK\r\n", b":1\r\n", b"$3\r\nabc\r\n", b"*1\r\n$1\r\nx\r\n", b"*0\r\n"],
    ids=["ok", "integer", "string", "short-array", "empty-array"],
)
def test_a_redis_that_answers_garbage_refuses_writes_and_leaves_reads_to_the_database(
    read_cache, settings, api_client, reply
):
    post = api_client.post("/news/posts/", {"title": "Before"}).json()
    url = f"/news/posts/{post['id']}/"
    events = ModelEvent.objects.count()

    with GarbageRedis(reply) as garbage:
        settings.REDIS_URL = garbage.url
        edit = api_client.patch(url, {"title": "After"})
        created = api_client.post("/news/posts/", {"title": "New"})
        answer, cache = read(url)
        settings.REDIS_URL = read_cache.url

    assert garbage.commands > 0
    assert (edit.status_code, created.status_code) == (503, 503)
    assert "nothing was changed" in edit.json()["detail"]
    assert list(Post.objects.values_list("title", flat=True)) == ["Before"]
    assert ModelEvent.objects.count() == events
    assert (answer.status_code, answer.json()["title"], cache) == (200, "Before", None)


# --- Where the suite keeps its entries -----------------------------------------------------------


def test_the_suite_keeps_its_cache_entries_in_the_redis_database_of_test_redis_url(tmp_path):
    from django.conf import settings

    nobody = "redis://127.0.0.1:1/0"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", __file__,
         "-k", "test_an_edit_answered_is_seen_by_the_next_read"],
        cwd=settings.BASE_DIR,
        env={**os.environ, "TEST_REDIS_URL": nobody,
             "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"},
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip

    assert f"needs Redis at {nobody} (TEST_REDIS_URL)" in result.stdout, result.stdout
    assert result.returncode == 0


def test_a_crowd_of_reads_on_one_worker_keeps_the_cache_on(read_cache):
    """More reads at once than a worker has Redis connections wait their turn on its event loop:
    none is taken for Redis failing (which would send every read to the database for 5 s)."""
    post = make_post(title="Crowded")
    key = "crowd-of-reads"
    tables = ("news_post",)

    async def crowd():
        return await asyncio.gather(*(read_cache.lookup_async(key, tables) for _ in range(300)))

    answers = asyncio.run(crowd())

    assert all(generations is not None for generations, _ in answers)
    assert read_cache._paused_until == 0.0
    assert read(f"/news/posts/{post.pk}/")[0].status_code == 200


def test_a_lookup_on_the_event_loop_that_fails_is_answered_by_a_thread(read_cache, monkeypatch):
    post = make_post(title="Answered anyway")
    url = f"/news/posts/{post.pk}/"
    read(url)

    async def broken(*args, **kwargs):
        raise RuntimeError("a fault of the lookup itself")

    monkeypatch.setattr(type(read_cache), "lookup_async", broken)
    answer = asgi_get(url)

    assert answer.status_code == 200
    assert answer.json()["title"] == "Answered anyway"
    assert answer.threaded is True


# --- Copies of entries held by a process (news/cache/store.py, COPIES_BYTES) ----------------------


def _entry_keys(store) -> list[bytes]:
    return list(store.client.scan_iter(match=f"{store.prefix}entry:*"))


def test_an_entry_gone_from_redis_is_not_answered_from_the_copy_a_process_holds(read_cache):
    post = make_post(title="Held")
    url = f"/news/posts/{post.pk}/"
    get(url)
    assert cache_said(get(url)) == "hit"  # answered from the copy held here

    for key in _entry_keys(read_cache):
        read_cache.client.delete(key)  # expired, evicted, or Redis emptied
    Post.objects.filter(pk=post.pk).update(title="Changed without a word to Redis")
    answer = get(url)

    assert (cache_said(answer), answer.json()["title"]) == (
        "miss",
        "Changed without a word to Redis",
    )


def test_an_entry_another_process_stored_since_is_answered_as_redis_holds_it(read_cache):
    post = make_post(title="Held")
    url = f"/news/posts/{post.pk}/"
    get(url)
    first = get(url)
    [key] = _entry_keys(read_cache)

    # Another process stored its own answer, under the same generations: another ETag, body.
    meta, _, body = read_cache.client.get(key).partition(b"\n")
    theirs = json.loads(meta)
    theirs["headers"] = [
        [name, '"another-process"' if value == first["ETag"] else value]
        for name, value in theirs["headers"]
    ]
    other = json.dumps(theirs).encode()
    read_cache.client.set(key, other + b"\n" + body.replace(b"Held", b"Theirs"))
    answer = get(url)

    assert (cache_said(answer), answer.json()["title"]) == ("hit", "Theirs")
    assert answer["ETag"] == '"another-process"'


def test_the_copies_a_process_holds_stay_within_their_bytes(read_cache, monkeypatch):
    monkeypatch.setattr(cache_store, "COPIES_BYTES", 2500)
    posts = [make_post(title=f"Post {n}", body="x" * 300) for n in range(8)]

    for post in posts * 2:
        answer, _ = read(f"/news/posts/{post.pk}/")
        assert answer.json()["title"] == post.title
    answers = [read(f"/news/posts/{post.pk}/") for post in posts]

    assert 0 < read_cache._copies_bytes <= 2500
    assert read_cache._copies_bytes == sum(copy.size for copy in read_cache._copies.values())
    assert [(a.json()["title"], cache) for a, cache in answers] == [
        (post.title, "hit") for post in posts
    ]


# --- The lookup on the event loop, with Redis gone wrong ------------------------------------------


@pytest.mark.parametrize(
    "reply",
    [b"", b"+OK\r\n", b"*1\r\n$1\r\nx\r\n", b"?garbage\r\n"],
    ids=["silent", "ok", "short-array", "not-resp"],
)
def test_a_lookup_on_the_event_loop_that_redis_fails_is_answered_by_a_thread(
    read_cache, settings, caplog, reply
):
    post = make_post(title="Answered anyway")
    url = f"/news/posts/{post.pk}/"

    with GarbageRedis(reply) as garbage:
        settings.REDIS_URL = garbage.url
        started = time.monotonic()
        answers = [asgi_get(url) for _ in range(2)]
        seconds = time.monotonic() - started
        settings.REDIS_URL = read_cache.url

    assert [(a.status_code, a.json()["title"], a.threaded) for a in answers] == [
        (200, "Answered anyway", True)
    ] * 2
    assert seconds < 1.5  # one lookup waited at most its timeout; then the cache is paused
    paused = [r for r in caplog.records if r.name == "news.cache" and "could not read" in r.message]
    assert len(paused) == 1


def test_a_lookup_on_an_open_connection_waits_half_a_second_at_most_all_told(read_cache, settings):
    tables = ("news_post",)
    # Each answer within the connection's timeout, but the script sent again: two commands.
    with SlowForgetfulRedis(read_cache.url, delay=cache_store.LOOKUP_SECONDS * 0.9) as proxy:
        settings.REDIS_URL = proxy.url
        store = cache_store.get_store()

        async def slow():
            await store.lookup_async("none", tables)  # the connection opened, its lineage checked
            proxy.arm()
            started = time.monotonic()
            looked_up = await store.lookup_async("none", tables)
            return looked_up, time.monotonic() - started

        looked_up, seconds = asyncio.run(slow())
        settings.REDIS_URL = read_cache.url

    assert looked_up == (None, None)  # the cache paused: the thread answers from the database
    assert seconds < cache_store.LOOKUP_SECONDS + 0.1


def test_an_answer_redis_sends_twice_is_never_taken_for_the_next_read(read_cache, settings):
    tables = ("news_post",)
    generations, _ = read_cache.lookup("first", tables)
    read_cache.save("first", generations, [["ETag", '"1"']], b'{"title": "First"}')
    read_cache.save("second", generations, [["ETag", '"2"']], b'{"title": "Second"}')

    with DoublingRedis(read_cache.url) as proxy:
        settings.REDIS_URL = proxy.url
        store = cache_store.get_store()  # a process of its own: no copies held

        async def at_once():
            await store.lookup_async("none", tables)  # the connection opened
            proxy.arm()
            # The second is asked before the first is answered.
            reads = (store.lookup_async(key, tables) for key in ("first", "second"))
            return await asyncio.gather(*reads)

        first, second = asyncio.run(at_once())
        settings.REDIS_URL = read_cache.url

    assert proxy.doubled == 1
    assert first[1].body == b'{"title": "First"}'
    assert second == (None, None)  # not First's answer: refused, and the cache paused


def test_a_lookup_on_the_event_loop_waits_half_a_second_at_most_its_connection_included(
    read_cache, settings
):
    post = make_post(title="Answered anyway")

    with GarbageRedis(b"") as silent:
        settings.REDIS_URL = silent.url.removesuffix("/0") + "/3"  # a SELECT first, unanswered
        started = time.monotonic()
        answer = asgi_get(f"/news/posts/{post.pk}/")
        seconds = time.monotonic() - started
        settings.REDIS_URL = read_cache.url

    assert (answer.status_code, answer.json()["title"], answer.threaded) == (
        200,
        "Answered anyway",
        True,
    )
    assert seconds < cache_store.LOOKUP_SECONDS + 0.3
