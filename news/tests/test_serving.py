"""The service as deployed (`manage.py serve`: granian, news_project/serving.py): a write
answered by one server process is seen by every later read from another, and slow clients neither
lose the end of a long stream nor keep other requests waiting."""

import json
import socket
import threading
import time

import pytest
import requests
from django.db import connection
from rest_framework_simplejwt.tokens import RefreshToken

from news.models import Post
from testing.processes import Served
from testing.rows import make_post
from testing.users import REVOCATIONS

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize("reads", ["anonymous", "token"])
@pytest.mark.parametrize("cached", [True, False], ids=["redis", "without-redis"])
def test_a_write_answered_by_one_process_is_seen_by_the_next_read_from_another(
    request, cached, reads, user
):
    # Without Redis, each worker keeps its answers (news/cache/snapshots.py): hits all the same.
    env = {"REDIS_URL": request.getfixturevalue("read_cache").url} if cached else {}
    token = RefreshToken.for_user(user).access_token
    auth = {"Authorization": f"Bearer {token}"}
    with Served(**env) as writer, Served(**env) as reader, requests.Session() as http:
        if reads == "token":
            http.headers.update(auth)
        post = http.post(f"{writer.url}/news/posts/", json={"title": "v0"}, headers=auth).json()
        comments = f"/news/posts/{post['id']}/comments/"
        reads = {
            "detail": f"/news/posts/{post['id']}/",
            "page": "/news/posts/?page_size=5",
            "all": "/news/posts/?all=true",
            "comments": comments,
            "all comments": "/news/comments/?all=true",
        }

        def seen() -> dict:
            answers = {name: http.get(f"{reader.url}{path}") for name, path in reads.items()}
            return {"caches": {a.headers.get("X-Cache") for a in answers.values()}} | {
                name: answer.json() for name, answer in answers.items()
            }

        comment_ids: list[int] = []
        for version in range(1, 13):
            # The same reads again: answered from the cache. Without Redis, a write anywhere in
            # the database server (autovacuum's too) makes the next one a miss: a few tries.
            for _ in range(5):
                if (before := seen())["caches"] == {"hit"}:
                    break
            assert before["caches"] == {"hit"}

            if version % 3 == 0:
                gone = comment_ids.pop()
                answer = http.delete(f"{writer.url}/news/comments/{gone}/", headers=auth)
                assert answer.status_code == 204
            elif version % 3 == 1:
                title = f"v{version}"
                answer = http.patch(
                    f"{writer.url}{reads['detail']}", json={"title": title}, headers=auth
                )
                assert answer.status_code == 200
            else:
                answer = http.post(
                    f"{writer.url}{comments}",
                    json={"name": f"c{version}", "email": "a@b.cd"},
                    headers=auth,
                )
                assert answer.status_code == 201
                comment_ids.append(answer.json()["id"])
            after = seen()

            assert after["detail"]["title"] == title
            assert [p["title"] for p in after["all"]] == [title]
            assert after["page"]["results"][0]["title"] == title
            assert [c["id"] for c in after["comments"]["results"]] == comment_ids
            assert [c["id"] for c in after["all comments"]] == comment_ids


@pytest.mark.parametrize("cached", [True, False], ids=["redis", "without-redis"])
@pytest.mark.parametrize("change", REVOCATIONS)
def test_a_token_revoked_in_one_process_is_refused_by_the_next_read_from_another(
    request, user, change, cached
):
    post = make_post(title="read with a token")
    token = RefreshToken.for_user(user).access_token
    env = {"REDIS_URL": request.getfixturevalue("read_cache").url} if cached else {}
    with Served(**env) as reader, requests.Session() as http:
        http.headers["Authorization"] = f"Bearer {token}"
        url = f"{reader.url}/news/posts/{post.pk}/"
        assert http.get(url).status_code == 200
        # A few tries: without Redis, a write anywhere in the database server ends a hit.
        assert any(http.get(url).headers.get("X-Cache") == "hit" for _ in range(5))

        change(type(user).objects.get(pk=user.pk))  # this process: not the server's

        answer = http.get(url)
        assert answer.status_code == 401
        assert answer.headers.get("X-Cache") is None


@pytest.mark.parametrize("change", REVOCATIONS)
def test_a_token_revoked_in_one_process_is_refused_by_the_next_write_to_another(
    read_cache, user, change
):
    token = RefreshToken.for_user(user).access_token
    with Served(REDIS_URL=read_cache.url) as writer, requests.Session() as http:
        http.headers["Authorization"] = f"Bearer {token}"
        url = f"{writer.url}/news/posts/"
        assert [http.post(url, json={"title": "kept"}).status_code for _ in range(3)] == [201] * 3

        change(type(user).objects.get(pk=user.pk))  # this process: not the server's

        answer = http.post(url, json={"title": "refused"})
        assert answer.status_code == 401
    assert list(Post.objects.values_list("title", flat=True)) == ["kept"] * 3


class SlowReader(threading.Thread):
    """A client that reads an answer at about `rate` bytes a second, through a small window,
    to its end or until stop() is called."""

    def __init__(self, url: str, rate: int) -> None:
        super().__init__(daemon=True)
        host, _, port = url.removeprefix("http://").partition("/")[0].partition(":")
        self.address, self.path = (host, int(port)), "/" + url.split("/", 3)[3]
        self.rate, self.error, self.seconds = rate, None, 0.0
        self.status, self.body = b"", b""
        self.stopping = threading.Event()

    def run(self) -> None:
        started = time.monotonic()
        try:
            with socket.socket() as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
                sock.connect(self.address)
                sock.sendall(f"GET {self.path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".encode())
                received = bytearray()
                while not self.stopping.is_set() and (chunk := sock.recv(2048)):
                    received += chunk
                    self.status = self.status or bytes(received[:12]).split()[1]
                    time.sleep(max(0.0, len(received) / self.rate - (time.monotonic() - started)))
            head, _, self.body = bytes(received).partition(b"\r\n\r\n")
        except Exception as exc:  # noqa: BLE001 - the test reports it
            self.error = exc
        self.seconds = time.monotonic() - started

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=10)


def rss_kib(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/status") as status:
            total += next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
    return total


def long_comments(rows: int):
    """A post with `rows` comments: `?all=true` over them is ~13 MB at 40,000, more than the
    socket buffers hold, so a server writing it waits on its client."""
    post = make_post(title="Still served")
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO news_comment (post_id, name, email, body, created_at, updated_at) "
            "SELECT %s, 'name ' || n, 'reader' || n || '@example.com', repeat('b', 200), "
            "now(), now() FROM generate_series(1, %s) AS n",
            [post.pk, rows],
        )
    return post


def answer_times(server: Served, post) -> list[float]:
    """Seconds for /health/ and a post, five times, each checked."""
    waits = []
    for _ in range(5):
        started = time.monotonic()
        health = requests.get(f"{server.url}/health/", timeout=5)
        detail = requests.get(f"{server.url}/news/posts/{post.pk}/", timeout=5)
        waits.append(time.monotonic() - started)
        assert (health.status_code, detail.json()["title"]) == (200, "Still served")
    return waits


def test_slow_readers_get_all_of_a_long_stream_and_others_are_served_meanwhile():
    rows = 40_000
    post = long_comments(rows)
    # All four may land on one worker: let each worker stream four (the limit has its own test),
    # with two threads more for everything else.
    with Served("--threads", "6", NEWS_MAX_STREAMS="4") as server:
        for _ in range(4):  # every worker has streamed once: what it allocates for good
            requests.get(f"{server.url}/news/comments/?all=true", timeout=30)
        memory_before = rss_kib(server.workers())
        readers = [SlowReader(f"{server.url}/news/comments/?all=true", 3_000_000) for _ in range(4)]
        for reader in readers:
            reader.start()
        time.sleep(1)

        waits = answer_times(server, post)
        memory_during = rss_kib(server.workers())
        for reader in readers:
            reader.join(timeout=60)

    assert max(waits) < 1.0, waits
    for reader in readers:
        assert (reader.error, reader.status) == (None, b"200")
        assert reader.seconds > 4  # a stream as long as its reader takes
        comments = json.loads(reader.body)
        assert len(comments) == rows
        assert comments[-1]["name"] == f"name {rows}"
    # Four streams of ~13 MB each at once: the workers hold a chunk of each, not the answers.
    assert (memory_during - memory_before) / 1024 < 60, (memory_before, memory_during)


def test_more_slow_readers_than_threads_leave_threads_for_everything_else():
    post = long_comments(40_000)
    with Served() as server:  # 2 workers of 4 threads, NEWS_MAX_STREAMS=2 each
        # As many as there are threads and more, each reading at 2 KB/s: the streams over the
        # limit are refused at once, and read as such.
        readers = [SlowReader(f"{server.url}/news/comments/?all=true", 2048) for _ in range(24)]
        for reader in readers:
            reader.start()
        time.sleep(2)

        waits = answer_times(server, post)
        statuses = [reader.status for reader in readers]
        for reader in readers:
            reader.stop()

    assert max(waits) < 1.0, waits
    assert statuses.count(b"200") <= 4
    assert statuses.count(b"503") == 24 - statuses.count(b"200") >= 20
    assert [reader.error for reader in readers] == [None] * 24


# --- Request bodies ------------------------------------------------------------------------------


def token_for(user) -> dict[str, str]:
    return {"Authorization": f"Bearer {RefreshToken.for_user(user).access_token}"}


def test_a_chunked_body_is_read_like_any_other(user):
    post = make_post(created_by=user, title="Before")
    with Served() as server:
        url = f"{server.url}/news/posts/{post.pk}/"
        headers = {**token_for(user), "Content-Type": "application/json"}
        # A generator body: requests sends it with Transfer-Encoding: chunked, no Content-Length.
        answer = requests.patch(url, data=iter([b'{"title": ', b'"After"}']), headers=headers)
        created = requests.post(
            f"{url}comments/",
            data=iter([b'{"name": "c", ', b'"email": "a@b.cd"}']),
            headers=headers,
        )
        too_big = requests.patch(url, data=iter([b" " * 2_000_000] * 2), headers=headers)

    assert (answer.status_code, answer.json()["title"]) == (200, "After")
    post.refresh_from_db()
    assert post.title == "After"
    assert created.status_code == 201
    assert post.comments.get().name == "c"
    assert too_big.status_code == 413
    assert too_big.json() == {
        "detail": "The request body is larger than the limit of 2621440 bytes."
    }


def test_a_body_sent_slowly_holds_no_transaction_and_no_lock(user):
    post = make_post(created_by=user, title="Before")
    body = json.dumps({"title": "Slow"}).encode()
    with Served() as server, socket.create_connection(server.address(), timeout=10) as slow:
        head = (
            f"PATCH /news/posts/{post.pk}/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: {token_for(user)['Authorization']}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        slow.sendall(head.encode() + body[:1])  # then nothing, for now
        time.sleep(1)

        started = time.monotonic()
        other = requests.patch(
            f"{server.url}/news/posts/{post.pk}/",
            json={"title": "Quick"},
            headers=token_for(user),
            timeout=5,
        )
        took = time.monotonic() - started
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND state LIKE 'idle in transaction%%'"
            )
            (idle_in_transaction,) = cursor.fetchone()

        slow.sendall(body[1:])
        slow_status = slow.recv(4096).split(b"\r\n", 1)[0]

    assert (other.status_code, other.json()["title"]) == (200, "Quick")
    assert took < 1.0
    assert idle_in_transaction == 0
    assert slow_status == b"HTTP/1.1 200 OK"
    post.refresh_from_db()
    assert post.title == "Slow"


class SlowBody(threading.Thread):
    """A client that declares a body of `length` bytes and sends one byte every `pause` seconds,
    until stop() is called; `answer` is what the server said meanwhile, if anything."""

    def __init__(self, server: Served, length: int = 100_000, pause: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.server, self.length, self.pause = server, length, pause
        self.answer = b""
        self.stopping = threading.Event()

    def run(self) -> None:
        with socket.create_connection(self.server.address(), timeout=30) as sock:
            sock.sendall(
                b"POST /news/posts/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n{" % self.length
            )
            sock.settimeout(self.pause)
            while not self.stopping.is_set():
                try:
                    if chunk := sock.recv(4096):
                        self.answer += chunk
                        continue
                    return  # closed by the server
                except TimeoutError:
                    pass
                try:
                    sock.sendall(b" ")
                except OSError:
                    return

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=10)


def test_clients_sending_bodies_slowly_hold_no_thread_and_health_answers_meanwhile():
    with Served() as server:  # 2 workers of 4 threads
        slow = [SlowBody(server) for _ in range(12)]
        for client in slow:
            client.start()
        time.sleep(1)

        waits = []
        for _ in range(5):
            started = time.monotonic()
            health = requests.get(f"{server.url}/health/", timeout=5)
            waits.append(time.monotonic() - started)
            assert health.status_code == 200
            time.sleep(0.5)
        for client in slow:
            client.stop()

    assert max(waits) < 2.0, waits
    assert [client.answer for client in slow] == [b""] * 12  # still being sent, not refused


def test_a_body_not_all_here_in_time_is_408_and_the_connection_closes():
    with Served(NEWS_BODY_TIMEOUT="1") as server:
        client = SlowBody(server, pause=0.3)
        started = time.monotonic()
        client.start()
        client.join(timeout=10)
        took = time.monotonic() - started

    head, _, body = client.answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 ")
    assert b"connection: close" in head.lower()
    assert json.loads(body) == {"detail": "The request body did not arrive within 1 seconds."}
    assert 1.0 <= took < 5.0  # the server closed the connection: the client's loop ended


def test_after_a_413_the_same_connection_carries_the_next_request(user):
    post = make_post(title="Still here")
    too_big = b'{"title": "' + b"x" * 3_000_000 + b'"}'
    with Served() as server, requests.Session() as http:
        answers = []
        for _ in range(3):
            refused = http.post(
                f"{server.url}/news/posts/",
                data=too_big,
                headers={**token_for(user), "Content-Type": "application/json"},
                timeout=10,
            )
            read = http.get(f"{server.url}/news/posts/{post.pk}/", timeout=10)
            answers.append((refused.status_code, read.status_code, read.json()["title"]))

    assert answers == [(413, 200, "Still here")] * 3


def test_a_body_too_large_to_read_is_refused_with_connection_close(user):
    with Served() as server, socket.create_connection(server.address(), timeout=10) as sock:
        sock.sendall(
            b"POST /news/posts/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Authorization: %s\r\n"
            % token_for(user)["Authorization"].encode()
            + b"Content-Type: application/json\r\nContent-Length: 100000000\r\n\r\n{"
        )
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.endswith(b"}"):
            answer += sock.recv(4096)

    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413 ")
    assert b"connection: close" in head.lower()
    assert json.loads(body) == {
        "detail": "The request body is larger than the limit of 2621440 bytes."
    }


@pytest.mark.parametrize(
    "framing",
    [
        b"Transfer-Encoding: chunked\r\n\r\nzz\r\n",  # a chunk size that is no number
        b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ],
)
@pytest.mark.parametrize("path", [b"/health/", b"/news/posts/"])
def test_a_body_whose_framing_is_malformed_is_a_400_naming_it_and_writes_nothing(
    user, framing, path
):
    with Served() as server, socket.create_connection(server.address(), timeout=10) as sock:
        sock.sendall(
            b"POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" % path
            + b"Authorization: %s\r\n" % token_for(user)["Authorization"].encode()
            + b"Content-Type: application/json\r\n"
            + framing
        )
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk

    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 "), answer
    assert json.loads(body) == {
        "detail": "The request body could not be read: its framing (Content-Length, "
        "Transfer-Encoding) is malformed."
    }
    assert not Post.objects.exists()


def test_a_head_of_a_long_stream_has_no_body_and_the_connection_carries_on():
    post = long_comments(5_000)
    with Served("--workers", "1") as server, requests.Session() as http:
        heads = [http.head(f"{server.url}/news/comments/?all=true", timeout=5) for _ in range(6)]
        after = http.get(f"{server.url}/news/posts/{post.pk}/", timeout=5)

    assert [(head.status_code, head.content) for head in heads] == [(200, b"")] * 6
    assert after.json()["title"] == "Still served"


def terminate_other_connections() -> int:
    """Drop every other connection to the test database, as a restart of PostgreSQL would."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0]


def test_connections_the_database_dropped_are_replaced_before_a_request_uses_them(user):
    token = RefreshToken.for_user(user).access_token
    with Served("--workers", "1") as server, requests.Session() as http:
        http.headers["Authorization"] = f"Bearer {token}"
        post = http.post(f"{server.url}/news/posts/", json={"title": "before"}).json()
        for _ in range(12):  # its threads hold connections
            assert http.get(f"{server.url}/news/posts/{post['id']}/").status_code == 200

        assert terminate_other_connections() >= 1
        time.sleep(0.2)

        answers = [http.get(f"{server.url}/news/posts/{post['id']}/") for _ in range(6)]
        answers += [http.post(f"{server.url}/news/posts/", json={"title": "after"})]
        answers += [http.put(f"{server.url}/news/posts/{post['id']}/", json={"title": "again"})]
    assert [a.status_code for a in answers] == [200] * 6 + [201, 200]
    assert answers[-1].json()["title"] == "again"
