"""The fake target behaves like json-server serving JSONPlaceholder, and misbehaves on demand."""

import socket
import subprocess
import sys
import threading
import time

import pytest
import requests

from fake_target import FakeTarget
from sync.client import TargetApiClient
from sync.errors import TargetApiError

pytestmark = pytest.mark.timeout(20)

POSTS = [
    {"userId": 1, "id": 1, "title": "first", "body": "one\ntwo"},
    {"userId": 1, "id": 2, "title": "second", "body": "three\nfour"},
    {"userId": 2, "id": 5, "title": "fifth", "body": "five\nsix"},
]
COMMENTS = [
    {"postId": 1, "id": 1, "name": "a", "email": "a@example.com", "body": "x\ny"},
    {"postId": 1, "id": 2, "name": "b", "email": "b@example.com", "body": "x\ny"},
    {"postId": 2, "id": 3, "name": "c", "email": "c@example.com", "body": "x\ny"},
]


@pytest.fixture
def target(fake_target):
    fake_target.load(posts=POSTS, comments=COMMENTS)
    return fake_target


@pytest.fixture
def http():
    with requests.Session() as session:
        yield session


# --- Other kinds of target ------------------------------------------------------------------------


def test_string_ids_as_json_server_1_gives_them(target, http):
    target.string_ids = True
    target.load(posts=POSTS, comments=COMMENTS)

    assert [p["id"] for p in http.get(f"{target.url}/posts").json()] == ["1", "2", "5"]
    created = http.post(f"{target.url}/posts", json={"id": 99, "userId": 3, "title": "t"}).json()
    assert isinstance(created["id"], str) and len(created["id"]) == 11
    assert http.get(f"{target.url}/posts/{created['id']}").json() == created
    assert http.get(f"{target.url}/posts/99").status_code == 404
    # Filters read "1" as the number 1 and compare strictly, as json-server 1.0 does.
    assert len(http.get(f"{target.url}/comments?postId=1").json()) == 2
    http.post(f"{target.url}/comments", json={"postId": "1", "name": "d"})
    assert len(http.get(f"{target.url}/comments?postId=1").json()) == 2
    # Deleting a post leaves its comments; those that name it as it is named lose their post.
    linked = http.post(f"{target.url}/comments", json={"postId": "2", "name": "e"}).json()
    assert http.delete(f"{target.url}/posts/2").status_code == 200
    assert target.comments[linked["id"]]["postId"] is None
    assert target.comments["3"]["postId"] == 2  # 2 is not "2" to json-server 1.0


def test_answers_without_ids_store_the_record_but_leave_its_id_out(target, http):
    target.answers_without_ids = True

    answer = http.post(f"{target.url}/posts", json={"id": 9, "userId": 3, "title": "t"})

    assert (answer.status_code, answer.json()) == (201, {"userId": 3, "title": "t"})
    assert target.posts[9]["title"] == "t"


def test_rewrite_stores_fields_as_a_target_that_normalises_them(target, http):
    target.rewrite = {"email": str.lower, "name": str.strip}

    answer = http.post(f"{target.url}/comments", json={"name": " N ", "email": "A@B.CO"}).json()
    http.put(f"{target.url}/comments/1", json={"name": "x ", "email": "X@Y.Z", "postId": 1})

    assert (answer["name"], answer["email"]) == ("N", "a@b.co")
    assert (target.comments[1]["name"], target.comments[1]["email"]) == ("x", "x@y.z")


def test_a_rate_limit_answers_429_with_retry_after_beyond_it(target, http):
    target.rate_limit = 20

    statuses = [http.get(f"{target.url}/posts/1").status_code for _ in range(30)]
    time.sleep(0.5)  # ten more requests' worth of tokens

    assert statuses.count(200) < 10 and 429 in statuses
    refused = next(r for r in target.calls() if r.status == 429)
    assert refused.status == 429
    assert http.get(f"{target.url}/posts/1").status_code == 200
    assert http.get(f"{target.url}/posts/99").headers.get("Retry-After") is None


def test_a_429_of_the_rate_limit_says_when_to_come_back(target, http):
    target.rate_limit = 1
    http.get(f"{target.url}/posts/1")

    answer = http.get(f"{target.url}/posts/1")

    assert (answer.status_code, answer.headers["Retry-After"]) == (429, "1")


# --- json-server semantics ---------------------------------------------------------------------


def test_lists_every_record_in_insertion_order(target, http):
    assert http.get(f"{target.url}/posts").json() == POSTS
    assert http.get(f"{target.url}/comments").json() == COMMENTS


def test_gets_one_record_by_id(target, http):
    response = http.get(f"{target.url}/posts/5")

    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json() == POSTS[2]


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE"])
@pytest.mark.parametrize("path", ["/posts/99", "/comments/99", "/posts/abc"])
def test_unknown_id_is_404_with_an_empty_object(target, http, method, path):
    response = http.request(method, f"{target.url}{path}", json={"title": "t"})

    assert response.status_code == 404
    assert response.json() == {}


@pytest.mark.parametrize("path", ["/", "/users", "/posts/1/albums", "/posts/1/comments/1/x"])
def test_unknown_route_is_404(target, http, path):
    assert http.get(f"{target.url}{path}").status_code == 404


def test_post_keeps_the_id_it_is_sent(target, http):
    record = {"userId": 3, "id": 42, "title": "t", "body": "b"}

    response = http.post(f"{target.url}/posts", json=record)

    assert response.status_code == 201
    assert response.json() == record
    assert target.posts[42] == record


def test_post_without_id_gets_the_largest_id_plus_one(target, http):
    response = http.post(f"{target.url}/posts", json={"userId": 3, "title": "t", "body": "b"})

    assert response.status_code == 201
    assert response.json()["id"] == 6
    assert http.post(f"{target.url}/comments", json={}).json() == {"id": 4}


def test_post_with_a_duplicate_id_is_500_and_changes_nothing(target, http):
    response = http.post(f"{target.url}/posts", json={"id": 2, "title": "other"})

    assert response.status_code == 500
    assert response.json() == {"error": "Insert failed, duplicate id"}
    assert target.posts[2] == POSTS[1]


@pytest.mark.parametrize("bad_id", ["7", 7.5, True])
def test_post_with_an_id_that_is_not_an_integer_is_400(target, http, bad_id):
    response = http.post(f"{target.url}/posts", json={"id": bad_id, "title": "t"})

    assert response.status_code == 400
    assert len(target.posts) == 3


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]"])
def test_a_body_that_is_not_a_json_object_is_400(target, http, body):
    response = http.post(f"{target.url}/posts", data=body)

    assert response.status_code == 400
    assert "error" in response.json()


def test_put_replaces_the_record_and_keeps_its_id(target, http):
    response = http.put(f"{target.url}/posts/1", json={"id": 77, "title": "new"})

    assert response.status_code == 200
    assert response.json() == {"id": 1, "title": "new"}
    assert target.posts[1] == {"id": 1, "title": "new"}


def test_patch_merges_into_the_record(target, http):
    response = http.patch(f"{target.url}/posts/1", json={"title": "new"})

    assert response.status_code == 200
    assert target.posts[1] == {**POSTS[0], "title": "new"}


def test_deleting_a_post_deletes_its_comments(target, http):
    response = http.delete(f"{target.url}/posts/1")

    assert response.status_code == 200
    assert response.json() == {}
    assert sorted(target.posts) == [2, 5]
    assert sorted(target.comments) == [3]


def test_deleting_a_comment_leaves_its_post(target, http):
    assert http.delete(f"{target.url}/comments/1").status_code == 200

    assert sorted(target.comments) == [2, 3]
    assert sorted(target.posts) == [1, 2, 5]


def test_lists_the_comments_of_a_post(target, http):
    assert http.get(f"{target.url}/posts/1/comments").json() == COMMENTS[:2]
    assert http.get(f"{target.url}/posts/99/comments").json() == []


def test_creates_a_comment_under_a_post(target, http):
    response = http.post(f"{target.url}/posts/2/comments", json={"name": "n", "postId": 9})

    assert response.status_code == 201
    assert target.comments[4] == {"name": "n", "postId": 2, "id": 4}


def test_filters_lists_by_field_equality(target, http):
    assert http.get(f"{target.url}/comments?postId=2").json() == [COMMENTS[2]]
    assert [p["id"] for p in http.get(f"{target.url}/posts?userId=1&userId=2").json()] == [1, 2, 5]
    assert [p["id"] for p in http.get(f"{target.url}/posts?_limit=1").json()] == [1, 2, 5]


def test_state_is_a_copy_that_later_requests_do_not_change(target, http):
    before = target.state()
    http.delete(f"{target.url}/posts/1")

    assert before == {"posts": POSTS, "comments": COMMENTS}
    assert [p["id"] for p in target.state()["posts"]] == [2, 5]


# --- Request log -------------------------------------------------------------------------------


def test_records_every_request_with_its_body_and_answer(target, http):
    http.get(f"{target.url}/posts?userId=1")
    http.post(f"{target.url}/comments", json={"id": 9, "postId": 1})
    http.put(f"{target.url}/posts/99", json={"title": "t"})

    assert [(r.method, r.path, r.body, r.status) for r in target.requests] == [
        ("GET", "/posts", None, 200),
        ("POST", "/comments", {"id": 9, "postId": 1}, 201),
        ("PUT", "/posts/99", {"title": "t"}, 404),
    ]
    assert target.requests[0].query == {"userId": ["1"]}


def test_calls_filter_by_method_and_path_prefix_and_reset_log_empties_it(target, http):
    http.get(f"{target.url}/posts/1")
    http.delete(f"{target.url}/posts/2")
    http.delete(f"{target.url}/comments/1")

    assert [r.path for r in target.calls(method="delete")] == ["/posts/2", "/comments/1"]
    assert [r.path for r in target.calls(path_prefix="/posts")] == ["/posts/1", "/posts/2"]
    assert [r.is_write for r in target.calls()] == [False, True, True]

    target.reset_log()

    assert target.calls() == []


# --- Misbehaviour ------------------------------------------------------------------------------


def test_fails_the_next_writes_then_serves_again(target, http):
    target.fail(503, times=2, writes_only=True)

    assert http.get(f"{target.url}/posts/1").status_code == 200
    statuses = [http.post(f"{target.url}/posts", json={"title": "t"}).status_code for _ in "abc"]

    assert statuses == [503, 503, 201]
    assert len(target.posts) == 4
    assert target.faults == []


def test_a_failure_answers_json_and_changes_nothing(target, http):
    target.fail(500, times=1)

    response = http.delete(f"{target.url}/posts/1")

    assert response.status_code == 500
    assert response.json() == {"error": "Internal Server Error"}
    assert 1 in target.posts


def test_a_429_carries_retry_after(target, http):
    target.fail(429, times=1)
    target.fail(429, times=1, retry_after=7)

    assert http.get(f"{target.url}/posts").headers["Retry-After"] == "1"
    assert http.get(f"{target.url}/posts").headers["Retry-After"] == "7"
    assert http.get(f"{target.url}/posts").status_code == 200


def test_failures_apply_only_to_the_given_method_and_path(target, http):
    target.fail(500, method="PUT", path="/comments")

    assert http.put(f"{target.url}/posts/1", json={}).status_code == 200
    assert http.put(f"{target.url}/comments/1", json={}).status_code == 500
    assert http.put(f"{target.url}/comments/2", json={}).status_code == 500
    assert http.get(f"{target.url}/comments/1").status_code == 200

    target.clear_faults()

    assert http.put(f"{target.url}/comments/1", json={}).status_code == 200


def test_a_share_of_failures_is_random_but_repeatable():
    def statuses(seed: int) -> list[int]:
        with FakeTarget(seed=seed) as server, requests.Session() as session:
            server.fail(500, share=0.3)
            return [session.get(f"{server.url}/posts").status_code for _ in range(60)]

    first, again = statuses(1), statuses(1)

    assert first == again
    assert 5 <= first.count(500) <= 35
    assert statuses(2) != first


def test_answers_a_raw_body_when_told(target, http):
    target.answer(200, body="<html>maintenance</html>", content_type="text/html", path="/posts")

    response = http.get(f"{target.url}/posts")

    assert response.status_code == 200
    assert response.text == "<html>maintenance</html>"
    assert http.get(f"{target.url}/comments").json() == COMMENTS


def test_drops_the_connection_without_answering(target, http):
    target.drop(times=1, writes_only=True)

    with pytest.raises(requests.ConnectionError):
        http.post(f"{target.url}/posts", json={"id": 10})

    assert 10 not in target.posts
    assert target.requests[-1].status is None
    assert http.post(f"{target.url}/posts", json={"id": 10}).status_code == 201


def test_process_then_drop_applies_the_write_but_never_answers(target, http):
    target.drop(times=1, method="POST", after_processing=True)

    with pytest.raises(requests.ConnectionError):
        http.post(f"{target.url}/posts", json={"id": 10, "title": "t"})

    assert target.posts[10] == {"id": 10, "title": "t"}
    assert http.get(f"{target.url}/posts/10").status_code == 200


def test_process_then_fail_applies_the_write_and_answers_the_error(target, http):
    target.fail(500, times=1, after_processing=True)

    assert http.delete(f"{target.url}/posts/1").status_code == 500

    assert 1 not in target.posts


def test_latency_delays_every_answer(target, http):
    target.latency = 0.2
    started = time.monotonic()

    http.get(f"{target.url}/posts/1")

    assert time.monotonic() - started >= 0.2


def test_stall_delays_only_matching_requests(target, http):
    target.stall(0.3, path="/comments", times=1)

    started = time.monotonic()
    http.get(f"{target.url}/posts")
    fast = time.monotonic() - started
    http.get(f"{target.url}/comments")
    slow = time.monotonic() - started - fast

    assert fast < 0.25 <= slow


def test_a_stall_after_processing_applies_the_write_then_answers_late(target, http):
    target.stall(0.5, method="DELETE", times=1, after_processing=True)
    answered = []
    deleting = threading.Thread(
        target=lambda: answered.append(http.delete(f"{target.url}/posts/1").status_code)
    )
    started = time.monotonic()
    deleting.start()

    # The record is gone while the answer is still on its way.
    while 1 in target.posts and time.monotonic() - started < 0.4:
        time.sleep(0.01)
    assert 1 not in target.posts and answered == []
    deleting.join(5)
    assert answered == [200] and time.monotonic() - started >= 0.5


def test_a_drop_with_a_delay_applies_the_write_only_after_it(target, http):
    target.drop(times=1, method="POST", after_processing=True, delay=0.3)
    started = time.monotonic()

    with pytest.raises(requests.ConnectionError):
        http.post(f"{target.url}/posts", json={"id": 10, "title": "t"})

    assert time.monotonic() - started >= 0.3
    assert target.posts[10] == {"id": 10, "title": "t"}


def test_a_drip_applies_the_write_then_sends_the_whole_answer_a_few_bytes_at_a_time(target):
    target.drip(8, every=0.05, method="PUT", times=1)
    body = b'{"id":1,"title":"dripped"}'
    request = (
        f"PUT /posts/1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body
    pieces: list[bytes] = []
    with socket.create_connection(("127.0.0.1", target.port), timeout=5) as connection:
        started = time.monotonic()
        connection.sendall(request)
        while piece := connection.recv(4096):
            pieces.append(piece)
        took = time.monotonic() - started

    answer = b"".join(pieces)
    head, _, payload = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert f"Content-Length: {len(payload)}".encode() in head
    assert payload == b'{"id":1,"title":"dripped"}'
    assert target.posts[1] == {"id": 1, "title": "dripped"}  # applied before the answer
    assert max(len(piece) for piece in pieces) <= 8
    assert took >= (len(answer) // 8 - 1) * 0.05


def test_a_drip_leaves_other_requests_alone(target, http):
    target.drip(1, every=0.5, method="PUT", times=1)
    started = time.monotonic()

    assert http.get(f"{target.url}/posts/1").json() == POSTS[0]
    assert time.monotonic() - started < 0.4


def test_a_stalled_answer_times_the_client_out(target):
    target.stall(1.0, path="/posts")
    client = TargetApiClient(base_url=target.url, timeout=0.2, retries=0)
    with client, pytest.raises(TargetApiError, match="no answer within 0.2 s") as failure:
        client.list("posts")

    assert failure.value.transient


def test_serves_eight_clients_at_once(target):
    target.latency = 0.3
    barrier = threading.Barrier(8)
    statuses: list[int] = []

    def call() -> None:
        with requests.Session() as session:
            barrier.wait()
            statuses.append(session.get(f"{target.url}/posts/1").status_code)

    started = time.monotonic()
    threads = [threading.Thread(target=call) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert statuses == [200] * 8
    assert target.max_in_flight == 8
    assert time.monotonic() - started < 0.3 * 3


def test_keeps_the_connection_alive_between_requests(target, http):
    for _ in range(5):
        assert http.get(f"{target.url}/posts/1").status_code == 200
        assert http.post(f"{target.url}/comments", json={"body": "x"}).status_code == 201

    assert len(target.requests) == 10
    assert target.connections_opened == 1


def test_the_client_retries_a_transient_failure(target):
    target.fail(503, times=2, method="GET")

    with TargetApiClient(base_url=target.url, retries=3, backoff_factor=0.01) as client:
        assert client.get("posts", 1) == POSTS[0]

    assert [r.status for r in target.requests] == [503, 503, 200]


def test_stop_cuts_open_connections_and_frees_the_port():
    server = FakeTarget().start()
    url = server.url
    with requests.Session() as session:
        assert session.get(f"{url}/posts").status_code == 200
        server.stop()

        with pytest.raises(requests.ConnectionError):
            session.get(f"{url}/posts", timeout=2)


def test_url_before_start_says_what_to_do():
    with pytest.raises(RuntimeError, match="start"):
        _ = FakeTarget().url


def test_runs_standalone_with_generated_data():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "fake_target", "--port", str(port), "--posts", "3"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        banner = process.stdout.readline()
        posts = requests.get(f"http://127.0.0.1:{port}/posts", timeout=5).json()
        comments = requests.get(f"http://127.0.0.1:{port}/comments", timeout=5).json()
    finally:
        process.terminate()
        process.wait(timeout=5)

    assert banner.startswith(
        f"Fake target serving 3 posts and 15 comments at http://127.0.0.1:{port}"
    )
    assert [p["id"] for p in posts] == [1, 2, 3]
    assert len(comments) == 15
