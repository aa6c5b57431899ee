"""PieceSet: a set of piece numbers stored one bit per piece, eight pieces a byte.

The interesting numbers are the byte boundaries (7 | 8, 15 | 16, 1023 | 1024)
and the edge of what the set has grown to so far.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scheduler.core import PieceSet

BOUNDARIES = [0, 1, 6, 7, 8, 9, 15, 16, 17, 63, 64, 255, 256, 1023, 1024, 1025]


def test_an_empty_set() -> None:
    pieces = PieceSet()
    assert len(pieces) == 0
    assert list(pieces) == []
    assert 0 not in pieces
    assert repr(pieces) == "PieceSet(count=0)"


@pytest.mark.parametrize("piece", BOUNDARIES)
def test_one_piece_is_the_only_member(piece: int) -> None:
    pieces = PieceSet()
    assert pieces.add(piece) is True
    assert len(pieces) == 1
    assert list(pieces) == [piece]
    assert piece in pieces
    others = {piece - 1, piece + 1, piece - 8, piece + 8, piece + 9, 2 * piece + 1} - {piece}
    for other in sorted(others):
        assert other not in pieces, other


@pytest.mark.parametrize("piece", BOUNDARIES)
def test_adding_a_piece_again_reports_it_and_counts_it_once(piece: int) -> None:
    pieces = PieceSet([piece])
    assert pieces.add(piece) is False
    assert len(pieces) == 1
    assert list(pieces) == [piece]
    assert repr(pieces) == "PieceSet(count=1)"


def test_pieces_across_byte_boundaries_are_kept_apart() -> None:
    pieces = PieceSet()
    results = [pieces.add(p) for p in (8, 7, 16, 15, 1024, 1023, 0)]
    assert results == [True] * 7
    assert [pieces.add(p) for p in (7, 8, 15, 16, 1023, 1024, 0)] == [False] * 7
    assert len(pieces) == 7
    assert list(pieces) == [0, 7, 8, 15, 16, 1023, 1024]
    for gap in (1, 6, 9, 14, 17, 1022, 1025):
        assert gap not in pieces


def test_iteration_is_ascending_whatever_the_insertion_order() -> None:
    order = [1024, 3, 900, 8, 7, 255, 256, 0, 17]
    assert list(PieceSet(order)) == sorted(order)
    assert all(type(p) is int for p in PieceSet(order))


def test_a_full_byte_and_the_first_bit_of_the_next() -> None:
    pieces = PieceSet(range(9))
    assert list(pieces) == list(range(9))
    assert len(pieces) == 9
    assert 9 not in pieces


def test_growing_past_the_last_byte() -> None:
    """Pieces beyond what the set has grown to are absent, and adding one grows it."""
    pieces = PieceSet([1023])  # 128 bytes: pieces 0..1023
    assert 1024 not in pieces
    assert 10**9 not in pieces
    assert pieces.add(1024) is True  # exactly one byte past the end
    assert pieces.add(1032) is True  # the first piece of the byte after that
    assert pieces.add(1031) is True  # fills the byte grown for 1024
    assert list(pieces) == [1023, 1024, 1031, 1032]
    assert 1025 not in pieces
    assert 1033 not in pieces


def test_storage_is_one_bit_per_piece_up_to_the_highest_piece() -> None:
    pieces = PieceSet()
    assert pieces.capacity() == 0
    grown = []
    for piece in (0, 7, 8, 16, 15, 1023, 1024, 100, 1040):
        pieces.add(piece)
        grown.append(pieces.capacity())
    assert grown == [8, 8, 16, 24, 24, 1024, 1032, 1032, 1048]
    assert PieceSet([1023]).capacity() == 1024
    assert PieceSet([1024]).capacity() == 1032


def test_negative_numbers_are_rejected_and_change_nothing() -> None:
    pieces = PieceSet([7])
    with pytest.raises(ValueError, match=r"^piece number must be >= 0, got -1$"):
        pieces.add(-1)
    with pytest.raises(ValueError, match=r"^piece number must be >= 0, got -8$"):
        PieceSet([3, -8])
    assert list(pieces) == [7]
    assert len(pieces) == 1


@pytest.mark.parametrize("value", [-1, -8, -9, "7", 7.0, None, (7,)])
def test_contains_is_false_for_negatives_and_non_integers(value: object) -> None:
    # -1 and -9 would index the last byte from the end, where piece 7 is set.
    pieces = PieceSet([7, 1023])
    assert value not in pieces


@given(st.lists(st.integers(0, 2100), max_size=80), st.integers(-3, 2200))
def test_behaves_like_a_set_of_ints(added: list[int], probe: int) -> None:
    pieces = PieceSet()
    model: set[int] = set()
    for piece in added:
        assert pieces.add(piece) is (piece not in model)
        model.add(piece)
    assert len(pieces) == len(model)
    assert list(pieces) == sorted(model)
    assert (probe in pieces) is (probe in model)
    assert repr(pieces) == f"PieceSet(count={len(model)})"
