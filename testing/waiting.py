"""Waiting in tests: one poll that fails loudly, naming what it waited for."""

import time
from collections.abc import Callable


def wait_for(condition: Callable[[], object], *, timeout: float = 15, what: str = "") -> float:
    """Poll until `condition()` is true; the seconds it took. Fails after `timeout` seconds."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what or condition}")
        time.sleep(0.01)
    return time.monotonic() - started
