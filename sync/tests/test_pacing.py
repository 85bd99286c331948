"""Pacing: the rate and the calls in flight follow what the target allows, below the ceilings."""

import random
import threading

import pytest

from sync.pacing import Pacer


class Clock:
    """A clock that moves only when told to, or when someone sleeps."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 3))
        self.now += seconds


@pytest.fixture
def clock():
    return Clock()


def pacer(clock, **ceilings) -> Pacer:
    return Pacer(clock=clock, sleep=clock.sleep, **ceilings)


def answered(pacer: Pacer, clock: Clock, calls: int, *, every: float, status: int = 200) -> None:
    for _ in range(calls):
        pacer.acquire()
        clock.now += every
        pacer.release(status, latency=0.01)


def test_calls_are_spaced_by_the_rate_ceiling(clock):
    paced = pacer(clock, max_rps=10)

    starts = []
    for _ in range(3):
        paced.acquire()
        starts.append(clock.now)
        paced.release(200, latency=0.01)

    assert [round(b - a, 3) for a, b in zip(starts, starts[1:], strict=False)] == [0.1, 0.1]


def test_a_retry_after_pauses_every_call_not_only_the_one_that_got_it(clock):
    paced = pacer(clock)
    answered(paced, clock, 10, every=0.01)
    paced.acquire()
    paced.release(429, latency=0.01, retry_after=2.0)
    clock.now += 0.5
    asked = clock.now

    paced.acquire()  # another call, in another thread as far as the pacer knows

    assert clock.now - asked == pytest.approx(1.5)


def test_a_slowdown_lowers_the_rate_to_a_share_of_what_the_run_was_sending(clock):
    paced = pacer(clock, max_rps=0)
    answered(paced, clock, 100, every=0.02)  # 50 a second sent

    paced.note_congestion(retry_after=1.0)

    assert paced.rate == pytest.approx(35, rel=0.05)


def test_many_429s_at_once_are_one_slowdown(clock):
    paced = pacer(clock, max_rps=100)
    answered(paced, clock, 100, every=0.02)

    for _ in range(8):
        paced.note_congestion(retry_after=1.0)
    once = paced.rate
    clock.now += 1.5
    paced.note_congestion(retry_after=1.0)

    assert once == pytest.approx(35, rel=0.05)
    assert paced.rate < once


def rate_after(paced: Pacer, clock: Clock, seconds: float) -> float:
    """Calls as fast as the pacer lets them through, for `seconds`: the rate at the end."""
    end = clock.now + seconds
    while clock.now < end:
        answered(paced, clock, 1, every=0.001)
    return paced.rate


def test_after_a_slowdown_the_rate_grows_back_holds_near_it_then_probes_up_to_the_ceiling(clock):
    paced = pacer(clock, max_rps=80)
    answered(paced, clock, 100, every=0.02)  # 50 a second
    paced.note_congestion(retry_after=1.0)
    assert paced.rate == pytest.approx(35, rel=0.05)

    soon = rate_after(paced, clock, 2.0)
    back = rate_after(paced, clock, 2.0)  # the way back is (50 * 0.3 / 0.4) ** (1/3) s: 3.35 s
    held = rate_after(paced, clock, 1.0)

    assert 40 < soon < 50
    assert back == pytest.approx(50, rel=0.02)
    assert held == pytest.approx(50, rel=0.05)
    assert rate_after(paced, clock, 10.0) == 80


def test_an_idle_spell_builds_no_burst_the_rate_stays_within_twice_what_is_sent(clock):
    paced = pacer(clock)
    answered(paced, clock, 100, every=0.02)
    paced.note_congestion(retry_after=1.0)
    clock.now += 60  # nothing to send for a minute

    answered(paced, clock, 30, every=0.1)  # then 10 a second

    assert paced.rate <= 2 * 10 * 1.1


def test_a_scattered_refusal_cuts_the_calls_in_flight_not_the_rate(clock):
    paced = pacer(clock, max_rps=100, max_concurrency=8)
    answered(paced, clock, 100, every=0.02)

    paced.acquire()
    paced.release(429, latency=0.01)

    assert (paced.rate, paced.concurrency) == (100, 5)


def test_refusals_of_more_than_a_fifth_of_the_calls_lower_the_rate(clock):
    paced = pacer(clock, max_rps=100)
    answered(paced, clock, 200, every=0.01)
    for _ in range(100):  # a third refused for three seconds, without saying when to come back
        answered(paced, clock, 1, every=0.01, status=429)
        answered(paced, clock, 2, every=0.01)

    assert paced.rate < 100


def test_calls_in_flight_are_cut_by_a_slowdown_and_grow_back_to_the_ceiling(clock):
    paced = pacer(clock, max_concurrency=8)
    answered(paced, clock, 50, every=0.02)
    paced.note_congestion(retry_after=1.0)

    assert paced.concurrency == 5
    answered(paced, clock, 500, every=0.02)
    assert paced.concurrency == 8


def test_a_call_waits_for_a_place_among_the_calls_in_flight():
    paced = Pacer(max_concurrency=1)
    paced.acquire()
    entered = threading.Event()

    def second() -> None:
        paced.acquire()
        entered.set()

    waiting = threading.Thread(target=second)
    waiting.start()
    assert not entered.wait(0.2)
    paced.release(200, latency=0.01)
    assert entered.wait(2)
    waiting.join()


def test_answers_much_slower_than_the_first_ones_cut_the_calls_in_flight(clock):
    paced = pacer(clock, max_rps=100, max_concurrency=8)
    for latency in [0.01] * 20 + [0.2] * 20:
        paced.acquire()
        clock.now += 0.02
        paced.release(200, latency=latency)

    assert paced.concurrency < 8 and paced.rate == 100


def test_a_stopping_caller_gets_no_place_and_leaves_none_taken(clock):
    paced = pacer(clock, max_concurrency=1)
    paced.note_congestion(retry_after=30.0)

    assert paced.acquire(stopping=lambda: clock.now > 105) is False
    assert paced.in_flight == 0


def test_a_run_resumes_from_the_rate_the_last_one_settled_on(clock):
    paced = pacer(clock, max_rps=50)

    paced.resume(30)

    assert paced.rate == 30
    paced.resume(80)
    assert paced.rate == 50


def test_a_target_refusing_a_share_of_calls_whatever_the_pace_never_ratchets_it_down(clock):
    paced = pacer(clock, max_rps=100)
    rng = random.Random(1)
    for _ in range(6000):  # a minute at up to 100 calls a second
        paced.acquire()
        clock.now += 0.01
        paced.release(429 if rng.random() < 0.1 else 200, latency=0.01)

    assert paced.rate > 30
