"""A compact, growable set of piece numbers: one bit per piece."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import final


@final
class PieceSet:
    """Finished pieces of a peer. ``add`` is O(1) amortised; ``len`` is O(1)."""

    __slots__ = ("_bits", "_count")

    def __init__(self, pieces: Iterable[int] = ()) -> None:
        self._bits = bytearray()
        self._count = 0
        for piece in pieces:
            self.add(piece)

    def add(self, piece: int) -> bool:
        """Add ``piece``; return True if it was new. Negative numbers raise ValueError."""
        if piece < 0:
            raise ValueError(f"piece number must be >= 0, got {piece}")
        byte, bit = divmod(piece, 8)
        if byte >= len(self._bits):
            self._bits.extend(bytes(byte + 1 - len(self._bits)))
        mask = 1 << bit
        if self._bits[byte] & mask:
            return False
        self._bits[byte] |= mask
        self._count += 1
        return True

    def __contains__(self, piece: object) -> bool:
        if not isinstance(piece, int) or piece < 0:
            return False
        byte, bit = divmod(piece, 8)
        return byte < len(self._bits) and bool(self._bits[byte] & (1 << bit))

    def __len__(self) -> int:
        return self._count

    def capacity(self) -> int:
        """Pieces the set can hold without growing: it grows a byte at a time, as needed."""
        return len(self._bits) * 8

    def __iter__(self) -> Iterator[int]:
        for byte_index, value in enumerate(self._bits):
            if value:
                for bit in range(8):
                    if value & (1 << bit):
                        yield byte_index * 8 + bit

    def __repr__(self) -> str:
        return f"PieceSet(count={self._count})"
