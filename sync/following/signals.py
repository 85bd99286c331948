"""SIGTERM and SIGINT as a request to stop: one implementation for every command that sends.

The handler only notes the signal and calls `on_stop`, which must take no lock (a flag, a
`StopSignal.request`): the command then stops at its next check, lets the calls under way finish
and records them. The exit status of a command so stopped is the shell's: 128 + the signal's
number, 130 for SIGINT (Ctrl-C) and 143 for SIGTERM.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sync.syncing import StopSignal

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopRequest:
    """The first stop signal received, if any."""

    def __init__(self) -> None:
        self.signal: signal.Signals | None = None

    def __bool__(self) -> bool:
        return self.signal is not None

    @property
    def reason(self) -> str:
        return f"{self.signal.name} received" if self.signal else ""

    @property
    def exit_status(self) -> int:
        return 128 + self.signal.value if self.signal else 0


@contextmanager
def stop_on_signals(on_stop: Callable[[str], None] = lambda reason: None) -> Iterator[StopRequest]:
    """While inside, SIGTERM and SIGINT call `on_stop(reason)` instead of ending the process."""
    received = StopRequest()

    def handle(signum: int, frame: object) -> None:
        if received.signal is None:
            received.signal = signal.Signals(signum)
        on_stop(received.reason)

    previous = {sig: signal.signal(sig, handle) for sig in STOP_SIGNALS}
    try:
        yield received
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextmanager
def stopping_run(stop: StopSignal) -> Iterator[StopRequest]:
    """While inside, SIGTERM and SIGINT ask a one-shot run to stop: it starts no new call, and
    the calls under way are recorded (`stop.reason` then names the signal)."""
    with stop_on_signals(lambda reason: stop.request(f"stopped: {reason}")) as received:
        yield received
