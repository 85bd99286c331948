"""Work a test starts and checks on later: a call in a thread of its own."""

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from django.db import connections

T = TypeVar("T")


class InBackground(Generic[T]):
    """`function()` called in a thread of its own, so on database connections of its own (closed
    when it returns); `join` waits for it and gives what it returned, or raises what it raised."""

    def __init__(self, function: Callable[[], T]) -> None:
        self._function = function
        self._returned: T | None = None
        self._raised: BaseException | None = None
        self._thread = threading.Thread(target=self._call)
        self._thread.start()

    def _call(self) -> None:
        try:
            self._returned = self._function()
        except BaseException as exc:  # handed to the test by join()
            self._raised = exc
        finally:
            connections.close_all()

    def join(self, timeout: float) -> T:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), f"still running after {timeout:g} s"
        if self._raised is not None:
            raise self._raised
        return self._returned  # type: ignore[return-value]
