"""Delivered: what a full run keeps of the entities the target is taken to hold as they are."""

from sync.planner import Kind
from sync.syncing.deliveries import Delivered

HASH = "0123456789abcdef0123456789abcdef"
OTHER = "f" * 32


def test_an_entity_is_found_under_its_key_once_with_its_pk_and_hash():
    delivered = Delivered()
    assert delivered.add(Kind.POST, "5", 5, HASH)

    assert (Kind.POST, "5") in delivered and (Kind.COMMENT, "5") not in delivered
    assert delivered.seen(Kind.POST, "5") == (5, int(HASH, 16))
    assert delivered.seen(Kind.POST, "6") is None
    assert delivered.unseen(Kind.POST) == []


def test_keys_are_told_apart_by_their_text():
    delivered = Delivered()
    assert delivered.add(Kind.POST, "5", 1, HASH)
    assert delivered.add(Kind.POST, "05", 2, OTHER)
    assert delivered.add(Kind.POST, "Q2rmeYny5Gc", 3, HASH)
    assert delivered.add(Kind.POST, "\u0665", 4, HASH)  # an Arabic-Indic five is not 5

    assert [delivered.seen(Kind.POST, key)[0] for key in ("05", "5", "Q2rmeYny5Gc", "\u0665")] == [
        2,
        1,
        3,
        4,
    ]


def test_what_it_cannot_keep_is_refused():
    delivered = Delivered()

    assert not delivered.add(Kind.POST, "1", 1, "")
    assert not delivered.add(Kind.POST, "1", 1, "not a hash, 32 characters long..")
    assert not delivered.add(Kind.POST, "1", 0, HASH)
    assert delivered.add(Kind.POST, "1", 1, HASH)
    assert not delivered.add(Kind.POST, "1", 2, HASH)  # the key is taken
    assert len(delivered) == 1


def test_the_entities_not_seen_are_listed():
    delivered = Delivered()
    for pk in (1, 2, 3):
        delivered.add(Kind.COMMENT, str(pk), pk, HASH)
    delivered.seen(Kind.COMMENT, "2")
    delivered.seen(Kind.COMMENT, "2")  # a record twice under one key

    assert sorted(delivered.unseen(Kind.COMMENT)) == [("1", 1), ("3", 3)]
    delivered.remove(Kind.COMMENT, "3")
    assert (Kind.COMMENT, "3") not in delivered and len(delivered) == 2
