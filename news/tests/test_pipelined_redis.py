"""The Redis connection of a worker's event loop (news/cache/pipelined.py): every read on the loop
shares it, each gets its own answer, and a connection that fails is replaced by the next call."""

import asyncio
import socket
import time

import pytest
import redis

from news.cache.pipelined import PipelinedRedis
from testing.garbage_redis import GarbageRedis

TIMEOUT = 0.5


@pytest.fixture
def redis_url(read_cache):
    return read_cache.url


def run(*steps):
    """Each step (an async function of the connection) in turn, on one event loop."""

    async def all_steps(connection):
        return [await step(connection) for step in steps]

    def on_one_loop(url: str):
        connection = PipelinedRedis(url, timeout=TIMEOUT, connect_timeout=TIMEOUT)
        return asyncio.run(all_steps(connection))

    return on_one_loop


def test_commands_at_once_share_one_connection_and_each_gets_its_own_answer(redis_url):
    async def crowd(connection):
        return await asyncio.gather(*(connection.call("ECHO", f"read {i}") for i in range(500)))

    async def clients(connection):
        listed = await connection.call(
            "CLIENT", "LIST", "ID", await connection.call("CLIENT", "ID")
        )
        return listed

    answers, listed = run(crowd, clients)(redis_url)

    assert answers == [f"read {i}".encode() for i in range(500)]
    assert b"cmd=client" in listed  # its own connection, alive after the crowd


def test_the_database_of_the_url_is_selected(redis_url, read_cache):
    key = f"{read_cache.prefix}pipelined-select"

    async def set_it(connection):
        return await connection.call("SET", key, "here")

    assert run(set_it)(redis_url) == [b"OK"]
    assert read_cache.client.get(key) == b"here"  # the same database as the URL's


def test_an_error_answer_raises_and_the_connection_carries_on(redis_url):
    async def wrong(connection):
        with pytest.raises(redis.ResponseError, match="unknown command"):
            await connection.call("NO-SUCH-COMMAND")

    async def ping(connection):
        return await connection.call("PING")

    assert run(wrong, ping)(redis_url) == [None, b"PONG"]


def test_a_connection_redis_dropped_is_opened_again_by_the_next_call(redis_url):
    async def kill_itself(connection):
        own = await connection.call("CLIENT", "ID")
        await connection.call("CLIENT", "KILL", "ID", own, "SKIPME", "no")
        await asyncio.sleep(0.05)  # the connection's end reaches the loop
        return own

    async def again(connection):
        return await connection.call("CLIENT", "ID")

    first, second = run(kill_itself, again)(redis_url)

    assert second != first


def test_a_redis_that_does_not_answer_times_out_every_call_in_flight():
    async def hang(connection):
        started = time.monotonic()
        calls = [connection.call("PING") for _ in range(3)]
        outcomes = await asyncio.gather(*calls, return_exceptions=True)
        return [type(outcome) for outcome in outcomes], time.monotonic() - started

    with GarbageRedis(b"") as silent:
        [(outcomes, seconds)] = run(hang)(silent.url)

    assert outcomes == [TimeoutError] * 3
    assert TIMEOUT <= seconds < TIMEOUT + 1


def test_a_command_has_its_whole_timeout_from_when_it_was_called(redis_url):
    async def later(connection):
        await connection.call("PING")
        await asyncio.sleep(TIMEOUT * 0.6)
        # Answered TIMEOUT * 0.8 after it was called: past the first command's deadline, within
        # its own.
        return await connection.call("BLPOP", "news-test-no-such-list", TIMEOUT * 0.8)

    assert run(later)(redis_url) == [None]


def test_a_late_answer_times_out_behind_answers_that_came(redis_url):
    async def stuck(connection):
        await connection.call("PING")
        await asyncio.sleep(TIMEOUT * 0.6)
        started = time.monotonic()
        calls = [connection.call("PING"), connection.call("BLPOP", "news-test-no-such-list", 5)]
        outcomes = await asyncio.gather(*calls, return_exceptions=True)
        return outcomes, time.monotonic() - started

    [(outcomes, seconds)] = run(stuck)(redis_url)

    assert outcomes[0] == b"PONG"
    assert isinstance(outcomes[1], TimeoutError)
    assert TIMEOUT <= seconds < TIMEOUT + 0.4


@pytest.mark.parametrize("reply", [b"?not resp\r\n", b"*-5\r\n:1\r\n"], ids=["type", "length"])
def test_an_answer_that_does_not_parse_drops_the_connection(reply):
    async def garbage(connection):
        with pytest.raises(redis.ConnectionError, match="does not parse"):
            await connection.call("PING")

    with GarbageRedis(reply) as garbage_redis:
        run(garbage)(garbage_redis.url)


def test_a_redis_out_of_reach_is_a_connection_error():
    async def unreachable(connection):
        with pytest.raises(redis.ConnectionError, match="cannot connect"):
            await connection.call("PING")

    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))  # a port of ours that nothing listens on: refused
        started = time.monotonic()
        run(unreachable)(f"redis://127.0.0.1:{bound.getsockname()[1]}/0")

    assert time.monotonic() - started < TIMEOUT + 1


def test_a_password_is_given_before_any_command(redis_url, read_cache):
    user, password = "news-pipelined-test", "a-password-of-the-test"
    read_cache.client.execute_command("ACL", "SETUSER", user, "on", f">{password}", "~*", "+@all")
    base = redis_url.removeprefix("redis://")

    async def whoami(connection):
        return await connection.call("ACL", "WHOAMI")

    async def refused(connection):
        with pytest.raises(redis.ConnectionError, match="refused AUTH.*WRONGPASS"):
            await connection.call("PING")

    try:
        assert run(whoami)(f"redis://{user}:{password}@{base}") == [user.encode()]
        run(refused)(f"redis://{user}:not-the-password@{base}")
    finally:
        read_cache.client.execute_command("ACL", "DELUSER", user)
