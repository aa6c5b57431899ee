"""Each host's upload load, as its children report it.

A host's word about its own load is not trusted: the load is counted from the
``pieces_finished`` reports that name it as the parent (and only for a parent the
scheduler handed to that child). Per host the ledger keeps, in bounded memory:

* the bytes and pieces served over a sliding window of :data:`UPLOAD_WINDOW`
  seconds, in :data:`UPLOAD_BUCKETS` buckets (a ring: older buckets are dropped);
* the current upload rate, an exponentially decayed average of the bytes served
  with time constant :data:`RATE_TIME_CONSTANT` (one number and its time).

Reads never drop a bucket. Both reads of the window (:meth:`UploadLedger.load`, and
:meth:`UploadLedger.window_bytes`, read for every candidate of a decision) sum it the
same way, at most :data:`UPLOAD_BUCKETS` additions, and O(1) while the newest bucket
stays the same: the sums are kept until a report or a new bucket changes them.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Final, final

import attrs

#: Seconds of the sliding window (Dragonfly's evaluator judges the last 60 s).
UPLOAD_WINDOW: Final = 60.0
#: Buckets of the window: a host costs at most this many entries.
UPLOAD_BUCKETS: Final = 12
#: Seconds of the decayed average that gives the current rate.
RATE_TIME_CONSTANT: Final = 5.0


@final
@attrs.frozen
class UploadLoad:
    """A host's upload load now (``StateView.upload_load``), from its children's reports."""

    #: Bits per second being served now (decayed average, time constant 5 s).
    rate: float = 0.0
    #: Bytes served over the last ``UPLOAD_WINDOW`` seconds (at bucket granularity).
    window_bytes: int = 0
    #: Pieces served over the same window.
    window_pieces: int = 0
    #: Children downloading from it now: the parent edges it holds (its upload slots taken).
    in_flight: int = 0


@final
class _HostUploads:
    __slots__ = ("buckets", "rate", "rate_at", "summed", "summed_at")

    def __init__(self, now: float) -> None:
        #: ``[bucket index, bytes, pieces]``, oldest first, at most ``UPLOAD_BUCKETS``.
        self.buckets: deque[list[int]] = deque(maxlen=UPLOAD_BUCKETS)
        self.rate = 0.0  # bits/s at rate_at
        self.rate_at = now
        #: The window's (bytes, pieces) as of bucket ``summed_at`` (None: to sum again).
        self.summed_at: int | None = None
        self.summed = (0, 0)


@final
class UploadLedger:
    """Bytes and pieces served per host over a sliding window, and the current rate."""

    def __init__(
        self,
        window: float = UPLOAD_WINDOW,
        buckets: int = UPLOAD_BUCKETS,
        time_constant: float = RATE_TIME_CONSTANT,
    ) -> None:
        if not (window > 0 and buckets > 0 and time_constant > 0):
            raise ValueError("window, buckets and time_constant must be > 0")
        self._width = window / buckets
        self._buckets = buckets
        self._tau = time_constant
        self._hosts: dict[str, _HostUploads] = {}

    def __len__(self) -> int:
        return len(self._hosts)

    def record(self, host_id: str, nbytes: int, pieces: int, now: float) -> None:
        """The host served ``pieces`` new pieces (``nbytes`` bytes), reported at ``now``."""
        if pieces <= 0:
            return  # nothing new (a report of pieces the child had)
        uploads = self._hosts.get(host_id)
        if uploads is None:
            uploads = self._hosts[host_id] = _HostUploads(now)
        index = math.floor(now / self._width)
        buckets = uploads.buckets
        if buckets and buckets[-1][0] >= index:
            # The same bucket (or a clock that stepped back: counted in the newest one).
            buckets[-1][1] += nbytes
            buckets[-1][2] += pieces
        else:
            buckets.append([index, nbytes, pieces])
        uploads.summed_at = None
        uploads.rate = self._decayed(uploads, now) + 8.0 * nbytes / self._tau
        uploads.rate_at = max(uploads.rate_at, now)

    def load(self, host_id: str, now: float, in_flight: int = 0) -> UploadLoad:
        """The host's load at ``now``; all zero for a host that served nothing."""
        uploads = self._hosts.get(host_id)
        if uploads is None:
            return UploadLoad(in_flight=in_flight)
        nbytes, pieces = self._window(uploads, now)
        return UploadLoad(self._decayed(uploads, now), nbytes, pieces, in_flight)

    def window_bytes(self, host_id: str, now: float) -> int:
        """``load(host_id, now).window_bytes``, in O(1) while the newest bucket is the same."""
        uploads = self._hosts.get(host_id)
        return 0 if uploads is None else self._window(uploads, now)[0]

    def host_ids(self) -> list[str]:
        """The hosts some child reported an upload from (for the invariants)."""
        return list(self._hosts)

    def forget(self, host_id: str) -> None:
        self._hosts.pop(host_id, None)

    def _window(self, uploads: _HostUploads, now: float) -> tuple[int, int]:
        """The (bytes, pieces) of the buckets in the window at ``now``, summed once per bucket."""
        index = math.floor(now / self._width)
        if uploads.summed_at != index:
            oldest = index - self._buckets
            nbytes = pieces = 0
            for i, b, p in uploads.buckets:
                if i > oldest:
                    nbytes += b
                    pieces += p
            uploads.summed, uploads.summed_at = (nbytes, pieces), index
        return uploads.summed

    def _decayed(self, uploads: _HostUploads, now: float) -> float:
        return uploads.rate * math.exp(-max(0.0, now - uploads.rate_at) / self._tau)
