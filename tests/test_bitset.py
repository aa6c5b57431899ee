"""PieceSet: a set of piece numbers, sparse (8 bytes a piece) until a bitmap is cheaper.

The interesting numbers are the byte boundaries (7 | 8, 15 | 16, 1023 | 1024)
and the edge of what the set has grown to so far.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scheduler.core import PieceSet
from scheduler.core._bitset import BYTES_PER_PIECE, MAX_PIECE

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
    """Pieces beyond what the set holds are absent, and adding one makes it a member."""
    pieces = PieceSet(range(1024))  # dense: a bitmap of 128 bytes, pieces 0..1023
    assert pieces.capacity() == 1024
    assert 1024 not in pieces
    assert 10**9 not in pieces
    assert pieces.add(1024) is True  # exactly one past the bitmap
    assert pieces.add(1032) is True
    assert pieces.add(1031) is True
    assert list(pieces) == [*range(1024), 1024, 1031, 1032]
    assert 1025 not in pieces
    assert 1033 not in pieces


def test_a_far_piece_is_kept_sparse_until_the_bitmap_is_cheaper() -> None:
    """One report of a far piece costs 8 bytes, not a bitmap up to it."""
    pieces = PieceSet()
    assert pieces.capacity() == 0
    assert pieces.storage_bytes() == 0
    pieces.add(99_999)
    assert pieces.capacity() == 0  # no bitmap
    assert pieces.storage_bytes() == BYTES_PER_PIECE
    # The bitmap up to 99 999 takes 12 500 bytes: it is built once 1 563 pieces
    # (12 504 bytes of sparse numbers) would cost as much.
    for piece in range(1561):
        pieces.add(piece)
    assert pieces.capacity() == 0
    assert pieces.storage_bytes() == 1562 * BYTES_PER_PIECE
    pieces.add(5000)
    assert pieces.capacity() == 100_000  # folded: 12 500 bytes <= 12 504
    assert pieces.storage_bytes() == 12_500
    assert len(pieces) == 1563
    assert list(pieces) == [*range(1561), 5000, 99_999]


def test_the_sparse_part_folds_when_the_bitmap_costs_exactly_as_much() -> None:
    pieces = PieceSet([120])  # a bitmap to 120 would take 16 bytes; the number takes 8
    assert pieces.capacity() == 0
    pieces.add(121)  # 16 bytes of numbers: the bitmap is no dearer
    assert pieces.capacity() == 128
    assert pieces.storage_bytes() == 16
    assert list(pieces) == [120, 121]


def test_storage_is_one_bit_per_piece_once_dense() -> None:
    pieces = PieceSet()
    grown = []
    for piece in (0, 7, 8, 16, 15, 1023, 1024, 100, 1040):
        pieces.add(piece)
        grown.append(pieces.capacity())
    # 0 folds at once (1 byte <= 8); 7 fits that byte; 8 and 16 fold (2 and 3 bytes);
    # 1023 stays sparse until the bitmap to it (128 bytes) is no dearer than what it holds.
    assert grown == [8, 8, 16, 24, 24, 24, 24, 24, 24]
    assert PieceSet(range(1024)).capacity() == 1024
    assert PieceSet(range(1024)).storage_bytes() == 128
    assert PieceSet([1023]).capacity() == 0


@given(st.lists(st.integers(0, 100_000), max_size=300))
def test_never_more_than_eight_bytes_per_piece(added: list[int]) -> None:
    pieces = PieceSet()
    for piece in added:
        pieces.add(piece)
        assert pieces.storage_bytes() <= BYTES_PER_PIECE * len(pieces)


def test_the_largest_piece_number() -> None:
    pieces = PieceSet([MAX_PIECE])
    assert MAX_PIECE == 2**64 - 1
    assert MAX_PIECE in pieces
    assert pieces.add(2**63) is True  # past a signed 64-bit number
    assert 2**64 not in pieces
    assert MAX_PIECE - 1 not in pieces
    with pytest.raises(
        ValueError, match=r"^piece number must be in 0\.\.2\*\*64-1, got 18446744073709551616$"
    ):
        pieces.add(2**64)
    assert list(pieces) == [2**63, MAX_PIECE]


def test_the_largest_piece_number_after_a_fold() -> None:
    # Piece 0 folds into the bitmap at once; the sparse part it leaves behind must still
    # hold numbers past a signed 64-bit one.
    pieces = PieceSet([0])
    assert pieces.capacity() == 8
    assert pieces.add(MAX_PIECE) is True
    assert MAX_PIECE in pieces
    assert list(pieces) == [0, MAX_PIECE]


def test_negative_numbers_are_rejected_and_change_nothing() -> None:
    pieces = PieceSet([7])
    with pytest.raises(ValueError, match=r"^piece number must be in 0\.\.2\*\*64-1, got -1$"):
        pieces.add(-1)
    with pytest.raises(ValueError, match=r"^piece number must be in 0\.\.2\*\*64-1, got -8$"):
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
