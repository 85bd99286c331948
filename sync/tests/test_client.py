"""TargetApiClient against the fake target: retries, Retry-After, careful POSTs, find, timeouts."""

import socket
import threading
import time

import pytest

from sync.client import TargetApiClient, TargetApiError
from sync.pacing import Pacer
from testing.ports import free_port
from testing.waiting import wait_for

pytestmark = pytest.mark.timeout(30)

POST = {"id": 1, "userId": 7, "title": "first", "body": "one"}
NEW_POST = {"id": 2, "userId": 7, "title": "second", "body": "two"}


@pytest.fixture
def target(fake_target):
    fake_target.load(posts=[POST], comments=[])
    return fake_target


@pytest.fixture
def make_client(target):
    """Clients with tiny backoff unless told otherwise; closed after the test."""
    clients = []

    def make(**options) -> TargetApiClient:
        settings = {"timeout": 2.0, "retries": 2, "backoff_factor": 0.01, "backoff_max": 0.02}
        client = TargetApiClient(base_url=target.url, **{**settings, **options})
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def methods(target) -> list[str]:
    return [request.method for request in target.calls()]


# --- Plain calls ---------------------------------------------------------------------------------


def test_list_returns_every_record(target, target_client):
    assert target_client.list("posts") == [POST]
    assert target_client.list("comments") == []


def test_list_that_is_not_a_list_of_objects_is_an_error(target, target_client):
    target.answer(200, body={"posts": []}, method="GET", path="/posts")

    with pytest.raises(TargetApiError, match=r"GET http://.*/posts did not answer with a JSON li"):
        target_client.list("posts")


def test_an_answer_that_is_not_json_is_an_error(target, target_client):
    target.answer(200, body="<html>busy</html>", content_type="text/html", method="GET")

    with pytest.raises(TargetApiError, match="the answer is not JSON"):
        target_client.list("posts")


def test_each_record_hands_over_the_records_list_returns(target, target_client):
    target.load_generated(30)
    taken = []

    target_client.each_record("comments", taken.append)

    assert taken == target_client.list("comments") and len(taken) == 150


@pytest.mark.parametrize(
    ("body", "content_type", "error"),
    [
        ({"posts": []}, "application/json", r"GET http://.*/posts did not answer with a JSON li"),
        ([{"id": 1}, 2], "application/json", r"GET http://.*/posts did not answer with a JSON li"),
        ("<html>busy</html>", "text/html", r"GET http://.*/posts: the answer is not JSON"),
        ('[{"id": 1}, {"id": ', "application/json", r"GET http://.*/posts: the answer is not J"),
    ],
)
def test_each_record_refuses_what_list_refuses(target, target_client, body, content_type, error):
    target.answer(200, body=body, content_type=content_type, method="GET", path="/posts")

    with pytest.raises(TargetApiError, match=error):
        target_client.each_record("posts", lambda record: None)
    with pytest.raises(TargetApiError, match=error):
        target_client.list("posts")


def test_a_list_cut_off_midway_is_asked_for_again_and_read_once():
    """The first answer breaks off after its first record: nothing of it is handed over."""
    body = b'[{"id": 1}, {"id": 2}]'
    server = socket.create_server(("127.0.0.1", 0))
    answered = []

    def serve() -> None:
        for cut in (True, False):
            connection, _ = server.accept()
            with connection:
                connection.recv(65536)
                head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                connection.sendall(head + (body[:12] if cut else body))
                answered.append(cut)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    client = TargetApiClient(base_url=f"http://127.0.0.1:{server.getsockname()[1]}", retries=2)
    taken = []

    client.each_record("posts", taken.append)

    thread.join(5)
    server.close()
    client.close()
    assert answered == [True, False]
    assert taken == [{"id": 1}, {"id": 2}]


def test_get_returns_the_record_or_none_when_the_target_has_none(target, target_client):
    assert target_client.get("posts", 1) == POST
    assert target_client.get("posts", 99) is None


def test_create_posts_the_payload_with_its_id_and_returns_the_stored_record(target, target_client):
    assert target_client.create("posts", NEW_POST) == NEW_POST

    [request] = target.calls()
    assert (request.method, request.path, request.body, request.status) == (
        "POST",
        "/posts",
        NEW_POST,
        201,
    )
    assert target.posts[2] == NEW_POST


def test_update_puts_the_whole_record_and_is_none_for_an_unknown_record(target, target_client):
    changed = {**POST, "title": "changed"}

    assert target_client.update("posts", 1, changed) == changed
    assert target_client.update("posts", 99, {**changed, "id": 99}) is None
    assert [(r.method, r.path, r.status) for r in target.calls()] == [
        ("PUT", "/posts/1", 200),
        ("PUT", "/posts/99", 404),
    ]
    assert target.posts == {1: changed}


def test_delete_is_true_when_deleted_and_false_for_an_unknown_record(target, target_client):
    assert target_client.delete("posts", 1) is True
    assert target_client.delete("posts", 1) is False
    assert target.posts == {}


def test_an_unknown_resource_is_refused_before_any_call(target, target_client):
    with pytest.raises(ValueError, match="unknown resource 'users'"):
        target_client.get("users", 1)
    assert target.calls() == []


def test_calls_share_one_keep_alive_connection(target, target_client):
    for _ in range(5):
        target_client.get("posts", 1)
    target_client.update("posts", 1, POST)
    target_client.create("posts", NEW_POST)

    assert target.connections_opened == 1


# --- Retries of idempotent calls -----------------------------------------------------------------

IDEMPOTENT_CALLS = {
    "GET": lambda client: client.get("posts", 1),
    "PUT": lambda client: client.update("posts", 1, POST),
    "DELETE": lambda client: client.delete("posts", 1),
}


@pytest.mark.parametrize("method", IDEMPOTENT_CALLS)
@pytest.mark.parametrize("status", [500, 502, 503, 504, 429])
def test_transient_errors_of_idempotent_calls_are_retried(target, target_client, method, status):
    target.fail(status, method=method, times=2, retry_after=0 if status == 429 else None)

    IDEMPOTENT_CALLS[method](target_client)

    assert [r.status for r in target.calls()] == [status, status, 200]


@pytest.mark.parametrize("method", IDEMPOTENT_CALLS)
def test_a_closed_connection_on_an_idempotent_call_is_retried(target, target_client, method):
    target.drop(method=method, times=1)

    IDEMPOTENT_CALLS[method](target_client)

    assert [r.status for r in target.calls()] == [None, 200]


def test_gives_up_after_the_retries_with_the_last_answer(target, target_client):
    target.fail(503, method="PUT", body={"error": "maintenance"})

    with pytest.raises(TargetApiError) as caught:
        target_client.update("posts", 1, POST)

    error = caught.value
    assert (error.status, error.transient) == (503, True)
    assert str(error) == (
        f"PUT {target.url}/posts/1: HTTP 503 Service Unavailable (application/json): "
        '{"error":"maintenance"}'
    )
    assert methods(target) == ["PUT"] * 3  # retries=2


@pytest.mark.parametrize("status", [400, 401, 403, 409, 422])
def test_other_client_errors_are_permanent_and_not_retried(target, target_client, status):
    target.fail(status, method="PUT")

    with pytest.raises(TargetApiError) as caught:
        target_client.update("posts", 1, POST)

    assert (caught.value.status, caught.value.transient) == (status, False)
    assert f"PUT {target.url}/posts/1: HTTP {status} " in str(caught.value)
    assert methods(target) == ["PUT"]


def test_retry_after_of_a_429_is_honoured_on_a_put(target, target_client):
    target.fail(429, retry_after=1, method="PUT", times=1)

    started = time.monotonic()
    target_client.update("posts", 1, POST)

    assert time.monotonic() - started >= 1.0
    assert [r.status for r in target.calls()] == [429, 200]


# --- The careful POST ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param({"kind": "drop"}, id="dropped-before-the-write"),
        pytest.param({"kind": "drop", "after_processing": True}, id="dropped-after-the-write"),
        pytest.param({"kind": "fail", "status": 500}, id="answered-500"),
        pytest.param({"kind": "fail", "status": 503, "after_processing": True}, id="503-after"),
    ],
)
def test_a_post_whose_outcome_is_unknown_is_never_sent_again_by_the_client(
    target, target_client, fault
):
    options = {key: value for key, value in fault.items() if key != "kind"}
    getattr(target, fault["kind"])(method="POST", times=1, **options)

    with pytest.raises(TargetApiError) as caught:
        target_client.create("posts", NEW_POST)

    assert caught.value.outcome_unknown is True
    assert methods(target) == ["POST"]


def test_a_post_that_timed_out_may_have_been_applied(target, make_client):
    client = make_client(timeout=0.2)
    target.stall(0.5, method="POST", times=1)

    with pytest.raises(TargetApiError) as caught:
        client.create("posts", NEW_POST)
    wait_for(lambda: target.in_flight == 0, timeout=5, what="the calls in flight to end")

    assert caught.value.outcome_unknown is True
    assert "no answer within 0.2 s" in str(caught.value)
    assert methods(target) == ["POST"]


def test_find_asks_with_equality_filters_and_keeps_only_records_that_match(target, target_client):
    target.load(
        posts=[
            POST,
            {**NEW_POST, "id": 5},
            {**NEW_POST, "id": 6, "body": "other"},
            {**NEW_POST, "id": 9, "extra": "kept"},
        ],
        comments=[],
    )

    found = target_client.find("posts", NEW_POST)

    assert [record["id"] for record in found] == [5, 9]
    [request] = target.calls()
    assert request.query == {"userId": ["7"], "title": ["second"], "body": ["two"]}


def test_find_checks_the_answers_of_a_target_that_ignores_filters(target, target_client):
    target.load(posts=[POST, {**NEW_POST, "id": 5}], comments=[])
    target.answer(200, body=[POST, {**NEW_POST, "id": 5}], method="GET", times=1)

    assert [record["id"] for record in target_client.find("posts", NEW_POST)] == [5]


def test_a_permanent_error_on_a_post_is_raised_at_once(target, target_client):
    target.fail(400, method="POST", body={"error": "title is required"})

    with pytest.raises(TargetApiError) as caught:
        target_client.create("posts", NEW_POST)

    assert (caught.value.status, caught.value.transient) == (400, False)
    assert caught.value.body == '{"error":"title is required"}'
    assert str(caught.value) == (
        f"POST {target.url}/posts: HTTP 400 Bad Request (application/json): "
        '{"error":"title is required"}'
    )
    assert methods(target) == ["POST"]


def test_a_post_honours_retry_after_of_a_429(target, target_client):
    target.fail(429, retry_after=1, method="POST", times=1)

    started = time.monotonic()
    target_client.create("posts", NEW_POST)

    assert time.monotonic() - started >= 1.0
    # A 429 says the POST was not carried out: it is sent again without a lookup first.
    assert [(r.method, r.status) for r in target.calls()] == [("POST", 429), ("POST", 201)]


def test_a_post_the_target_accepted_with_a_body_that_is_not_json_succeeds(target, target_client):
    target.answer(
        201,
        body="Created",
        content_type="text/plain",
        method="POST",
        times=1,
        after_processing=True,
    )

    assert target_client.create("posts", NEW_POST) == {}
    assert target.posts[NEW_POST["id"]]["title"] == NEW_POST["title"]
    assert methods(target) == ["POST"]


def test_a_post_to_a_port_nobody_listens_on_fails_at_once_without_lookups():
    port = free_port()
    client = TargetApiClient(
        base_url=f"http://127.0.0.1:{port}", timeout=1, retries=3, backoff_factor=0.01
    )

    started = time.monotonic()
    with pytest.raises(TargetApiError) as caught:
        client.create("posts", NEW_POST)

    assert time.monotonic() - started < 1.0
    assert str(caught.value).startswith(f"POST http://127.0.0.1:{port}/posts: connection failed")
    assert caught.value.outcome_unknown is False


def test_the_backoff_of_a_post_never_exceeds_backoff_max(target, make_client):
    client = make_client(retries=3, backoff_factor=1.0, backoff_max=0.05)
    target.fail(429, retry_after=None, method="POST", times=3)

    started = time.monotonic()
    client.create("posts", NEW_POST)

    assert time.monotonic() - started < 0.5
    assert target.posts[2] == NEW_POST


# --- No answer -----------------------------------------------------------------------------------


def test_a_stalled_get_is_retried_after_the_timeout(target, make_client):
    client = make_client(timeout=0.2)
    target.stall(0.5, method="GET", times=1)

    assert client.get("posts", 1) == POST
    assert len(target.calls("GET")) == 2


def test_a_target_that_never_answers_in_time_is_a_transient_error(target, make_client):
    client = make_client(timeout=0.2, retries=1)
    target.stall(0.5)

    with pytest.raises(TargetApiError) as caught:
        client.update("posts", 1, POST)

    assert (caught.value.status, caught.value.transient) == (None, True)
    assert str(caught.value) == f"PUT {target.url}/posts/1: no answer within 0.2 s"
    assert len(target.calls("PUT")) == 2


# Each attempt is bounded as a whole, from connecting to the last byte of the answer.


@pytest.mark.parametrize(
    ("method", "call"),
    [
        ("GET", lambda client: client.list("posts")),
        ("PUT", lambda client: client.update("posts", 1, POST)),
        ("POST", lambda client: client.create("posts", NEW_POST)),
    ],
)
def test_an_answer_dripped_a_byte_at_a_time_never_holds_an_attempt_past_the_timeout(
    target, make_client, method, call
):
    target.drip(1, every=0.05, method=method)  # about 10 s for the whole answer
    client = make_client(timeout=0.5, retries=0)

    started = time.monotonic()
    with pytest.raises(TargetApiError) as caught:
        call(client)
    took = time.monotonic() - started

    assert 0.5 <= took < 1.0
    assert str(caught.value).endswith(": no answer within 0.5 s")
    assert (caught.value.outcome_unknown, caught.value.timed_out) == (True, True)


def test_an_answer_cut_short_after_its_status_line_is_never_taken_for_a_success(
    target, make_client
):
    target.drip(8, every=0.05, method="PUT")  # "HTTP/1.1 200 OK" and part of the headers
    client = make_client(timeout=0.5, retries=0)

    with pytest.raises(TargetApiError) as caught:
        client.update("posts", 1, {**POST, "title": "changed"})

    assert str(caught.value).endswith(": no answer within 0.5 s")
    assert caught.value.outcome_unknown is True


def test_each_retry_of_a_dripped_answer_is_bounded_by_the_timeout_too(target, make_client):
    target.drip(1, every=0.05, method="PUT")
    client = make_client(timeout=0.3, retries=2)

    started = time.monotonic()
    with pytest.raises(TargetApiError, match="no answer within 0.3 s"):
        client.update("posts", 1, POST)

    assert time.monotonic() - started < 3 * 0.3 + 0.5
    assert methods(target) == ["PUT"] * 3


def test_the_connection_of_an_attempt_cut_short_is_not_used_again(target, make_client):
    target.drip(1, every=0.05, method="PUT", times=1)
    client = make_client(timeout=0.3, retries=0)
    with pytest.raises(TargetApiError):
        client.update("posts", 1, POST)

    assert client.get("posts", 1) == POST


# Once the caller stops (a run's stop signal), no call starts and none is tried again.


def test_once_stopping_no_call_starts(target, make_client):
    client = make_client()
    client.stop_when = lambda: True

    with pytest.raises(TargetApiError) as caught:
        client.update("posts", 1, POST)

    assert caught.value.sent is False
    assert str(caught.value) == f"PUT {target.url}/posts/1: not sent, the caller is stopping"
    assert target.calls() == []


@pytest.mark.parametrize("method", ["PUT", "POST"])
def test_a_stop_cuts_the_wait_before_a_retry_and_no_retry_is_sent(target, make_client, method):
    target.fail(429, retry_after=30, method=method)
    client = make_client(retries=3)
    stop = threading.Event()
    client.stop_when = stop.is_set
    threading.Timer(0.3, stop.set).start()

    started = time.monotonic()
    with pytest.raises(TargetApiError) as caught:
        IDEMPOTENT_CALLS["PUT"](client) if method == "PUT" else client.create("posts", NEW_POST)

    assert time.monotonic() - started < 1.0
    assert caught.value.status == 429
    assert methods(target) == [method]


def test_a_stop_during_the_backoff_after_a_lost_connection_sends_nothing_more(target, make_client):
    target.drop(method="DELETE")
    client = make_client(retries=3, backoff_factor=2.0, backoff_max=30)
    stop = threading.Event()
    client.stop_when = stop.is_set
    threading.Timer(0.3, stop.set).start()

    started = time.monotonic()
    with pytest.raises(TargetApiError, match="connection failed"):
        client.delete("posts", 1)

    assert time.monotonic() - started < 1.0
    assert methods(target) == ["DELETE", "DELETE"]  # the first retry goes at once; then 4 s


def test_a_stop_makes_the_pacer_send_nothing_more(target, make_client):
    client = make_client(max_rps=1)
    client.get("posts", 1)  # the next slot is a second away
    stop = threading.Event()
    client.stop_when = stop.is_set
    threading.Timer(0.2, stop.set).start()

    started = time.monotonic()
    with pytest.raises(TargetApiError) as caught:
        client.get("posts", 1)

    assert time.monotonic() - started < 0.6
    assert caught.value.sent is False
    assert methods(target) == ["GET"]


def test_a_target_that_refuses_connections_is_a_transient_error():
    url = f"http://127.0.0.1:{free_port()}"
    client = TargetApiClient(base_url=url, retries=1, backoff_factor=0.01, backoff_max=0.02)
    with client, pytest.raises(TargetApiError) as caught:
        client.get("posts", 1)

    assert (caught.value.status, caught.value.transient) == (None, True)
    message = str(caught.value)
    assert message.startswith(f"GET {url}/posts/1: connection failed (")
    # The URL says where: nothing of the connection's class is told the operator.
    assert message.endswith(
        "connection failed (Failed to establish a new connection: [Errno 111] Connection refused)"
    )


# --- Rate limit ----------------------------------------------------------------------------------


def test_max_rps_spaces_calls(target, make_client):
    client = make_client(max_rps=20)

    started = time.monotonic()
    for _ in range(10):
        client.get("posts", 1)

    assert time.monotonic() - started >= 0.45


def test_the_pace_is_shared_by_threads():
    pacer = Pacer(max_rps=50)

    def wait_three_times() -> None:
        for _ in range(3):
            pacer.acquire()
            pacer.release(200, latency=0.001)

    threads = [threading.Thread(target=wait_three_times) for _ in range(4)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert time.monotonic() - started >= 11 * 0.02 - 0.005


def test_max_rps_zero_means_unlimited():
    pacer = Pacer(max_rps=0)

    started = time.monotonic()
    for _ in range(1000):
        pacer.acquire()
        pacer.release(200, latency=0.001)

    assert time.monotonic() - started < 0.1
