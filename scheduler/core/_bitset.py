"""A set of piece numbers that is sparse until it is dense.

Storage is a bitmap for a dense prefix of piece numbers (one bit per piece,
eight a byte) and, above it, a sorted array of 8-byte numbers. A piece past the
bitmap goes into the array; the array is folded into the bitmap as soon as the
grown bitmap costs no more than what it replaces. So the set never holds more
than :data:`BYTES_PER_PIECE` bytes per piece it contains (plus the containers'
fixed size): one report of piece 99 999 costs 8 bytes, not 12 500, and a peer
that has most pieces of its task pays one bit each.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from typing import Final, final

#: What one piece costs in the sparse part: an unsigned 8-byte integer.
BYTES_PER_PIECE: Final = 8
#: The largest piece number a set can hold (the sparse part's integers are 64-bit).
MAX_PIECE: Final = 2**64 - 1


@final
class PieceSet:
    """Finished pieces of a peer. ``add`` and ``in`` are O(log n) at worst; ``len`` is O(1)."""

    __slots__ = ("_bits", "_count", "_sparse")

    def __init__(self, pieces: Iterable[int] = ()) -> None:
        self._bits = bytearray()
        #: Pieces above the bitmap (all >= 8 * len(_bits)), ascending.
        self._sparse: array[int] = array("Q")
        self._count = 0
        for piece in pieces:
            self.add(piece)

    def add(self, piece: int) -> bool:
        """Add ``piece``; return True if it was new. A number out of 0..MAX_PIECE raises."""
        if not 0 <= piece <= MAX_PIECE:
            raise ValueError(f"piece number must be in 0..2**64-1, got {piece}")
        byte, bit = divmod(piece, 8)
        bits = self._bits
        if byte < len(bits):
            mask = 1 << bit
            if bits[byte] & mask:
                return False
            bits[byte] |= mask
        else:
            sparse = self._sparse
            index = bisect_left(sparse, piece)
            if index < len(sparse) and sparse[index] == piece:
                return False
            sparse.insert(index, piece)
            self._fold()
        self._count += 1
        return True

    def _fold(self) -> None:
        """Move the sparse part into the bitmap when the bitmap would cost no more."""
        sparse, bits = self._sparse, self._bits
        needed = sparse[-1] // 8 + 1
        if needed > len(bits) + BYTES_PER_PIECE * len(sparse):
            return
        # A new buffer, not extend(bytes(...)): the fold then holds no second copy.
        bits = bytearray(needed)
        bits[: len(self._bits)] = self._bits
        for piece in sparse:
            byte, bit = divmod(piece, 8)
            bits[byte] |= 1 << bit
        self._bits = bits
        self._sparse = array("Q")

    def __contains__(self, piece: object) -> bool:
        if not isinstance(piece, int) or piece < 0:
            return False
        byte, bit = divmod(piece, 8)
        if byte < len(self._bits):
            return bool(self._bits[byte] & (1 << bit))
        sparse = self._sparse
        index = bisect_left(sparse, piece)
        return index < len(sparse) and sparse[index] == piece

    def __len__(self) -> int:
        return self._count

    def capacity(self) -> int:
        """Pieces the bitmap covers (0 .. capacity-1); the pieces above it are kept sparse."""
        return len(self._bits) * 8

    def storage_bytes(self) -> int:
        """Bytes of piece data held: the bitmap plus 8 per sparse piece (<= 8 per piece)."""
        return len(self._bits) + BYTES_PER_PIECE * len(self._sparse)

    def __iter__(self) -> Iterator[int]:
        for byte_index, value in enumerate(self._bits):
            if value:
                for bit in range(8):
                    if value & (1 << bit):
                        yield byte_index * 8 + bit
        yield from self._sparse

    def __repr__(self) -> str:
        return f"PieceSet(count={self._count})"
