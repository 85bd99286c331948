import pytest

from sync.batching import chunked


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
