import pytest

from sync.batching import chunked, ramped


@pytest.mark.parametrize(
    ("items", "size", "expected"),
    [
        ([], 3, []),
        ([1, 2, 3], 3, [[1, 2, 3]]),
        ([1, 2, 3, 4, 5], 2, [[1, 2], [3, 4], [5]]),
        (range(4), 1, [[0], [1], [2], [3]]),
    ],
)
def test_chunked_keeps_order_and_leaves_a_short_last_batch(items, size, expected):
    assert list(chunked(items, size)) == expected


def test_chunked_reads_a_generator_lazily():
    seen = []

    def numbers():
        for number in range(10):
            seen.append(number)
            yield number

    first = next(chunked(numbers(), 3))

    assert (first, seen) == ([0, 1, 2], [0, 1, 2])


def test_chunked_refuses_a_size_below_one():
    with pytest.raises(ValueError, match="at least 1"):
        list(chunked([1], 0))


@pytest.mark.parametrize(
    ("first", "size", "expected"),
    [
        (2, 100, [2, 4, 8, 16, 32, 38]),
        (3, 10, [3, 6, 10, 10, 10, 10, 10, 10, 10, 10, 10, 1]),
        (50, 20, [20, 20, 20, 20, 20]),
    ],
)
def test_ramped_starts_small_doubles_up_to_the_size_and_keeps_order(first, size, expected):
    batches = list(ramped(range(100), first=first, size=size))

    assert [len(batch) for batch in batches] == expected
    assert [item for batch in batches for item in batch] == list(range(100))


def test_ramped_refuses_a_size_below_one():
    with pytest.raises(ValueError, match="at least 1"):
        list(ramped([1], first=0, size=5))
