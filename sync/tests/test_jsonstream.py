"""A JSON list read piece by piece: the items json.loads gives, and the same verdict on a body
that is not JSON or not a list."""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sync.jsonstream import JsonListReader, NotJson


def read_in_pieces(body: bytes, size: int):
    reader = JsonListReader()
    items = []
    try:
        for start in range(0, len(body), size):
            items += reader.feed(body[start : start + size])
        items += reader.close()
    except NotJson:
        return "not JSON"
    return items if reader.is_list else "not a list"


def read_whole(body: bytes):
    try:
        data = json.loads(body)
    except ValueError:
        return "not JSON"
    return data if isinstance(data, list) else "not a list"


BODIES = [
    b"[]",
    b" [ ] ",
    b'[{"id": 1, "title": "a"}, {"id": "Q2rmeYny5Gc"}]',
    b'[1.5, 2e3, -0, 2E+5, 3.25e-2, true, null, "x\\u00e9", [1, [2]]]',
    b"[12345678901234567890, NaN, Infinity]",
    "\ufeff[1]".encode(),
    '["h\u00e9llo \u4e16"]'.encode(),
    "[1]".encode("utf-16"),
    b'{"posts": []}',
    b'"text"',
    b"12",
    b"",
    b"   ",
    b"<html>busy</html>",
    b"[1,]",
    b"[,1]",
    b"[1 2]",
    b"[2e]",
    b"[2.]",
    b"[01]",
    b"[1",
    b'["abc',
    b"[1] x",
    b"[{}]]",
    b'["\xff"]',
]


@pytest.mark.parametrize("size", [1, 2, 3, 5, 4096])
@pytest.mark.parametrize("body", BODIES)
def test_a_body_read_in_pieces_reads_as_json_loads_reads_it(body, size):
    assert read_in_pieces(body, size) == read_whole(body)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=10,
)


@given(st.lists(json_values, max_size=8), st.integers(1, 40), st.booleans())
def test_any_list_cut_anywhere_gives_the_same_items(items, size, spaced):
    body = json.dumps(items, indent=1 if spaced else None, ensure_ascii=False).encode()

    assert read_in_pieces(body, size) == items


def test_the_start_of_the_body_is_kept_to_quote_it():
    reader = JsonListReader()
    list(reader.feed(b"<html>" + b"x" * 5000))

    assert reader.head.startswith(b"<html>xx") and len(reader.head) == 2048
