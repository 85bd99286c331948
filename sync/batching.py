"""Splitting work into batches (itertools.batched arrives only with Python 3.12)."""

from collections.abc import Iterable, Iterator
from itertools import islice
from typing import TypeVar

T = TypeVar("T")


def chunked(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of at most `size` items, in order; reads `items` lazily."""
    if size < 1:
        raise ValueError(f"size must be at least 1, got {size}")
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def ramped(items: Iterable[T], *, first: int, size: int) -> Iterator[list[T]]:
    """Like chunked(items, size), but the first list holds at most `first` items and each next
    one twice as many as the one before, up to `size`: the first batch is ready at once."""
    if min(first, size) < 1:
        raise ValueError(f"sizes must be at least 1, got first={first}, size={size}")
    iterator = iter(items)
    current = min(first, size)
    while chunk := list(islice(iterator, current)):
        yield chunk
        current = min(current * 2, size)
