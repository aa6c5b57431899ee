from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Final, final

from ..core import (
    ACTIVE_PEER_STATES,
    Expiry,
    Peer,
    PeerState,
    Reason,
)
from ..hookspecs import hookimpl
from ..settings import Section, duration

SETTINGS: Final = Section.plugin(
    "peer_lifetime",
    duration(
        "peer_ttl",
        24 * 3600,
        "a peer not updated for this long is evicted",
        details="(reason `ttl_expired`).",
    ),
    duration(
        "piece_timeout",
        30 * 60,
        "a downloading peer that finishes no piece for this long is evicted",
        details="(running or back-to-source; reason `piece_timeout`).",
    ),
    duration(
        "failed_peer_ttl",
        0,
        "a failed peer is evicted this long after it failed",
        details="(reason `failed`); `0s`: at once.",
    ),
)


@final
class PeerLifetime:
    """Peers live ``peer_ttl`` after their last update; stalled and failed peers go sooner.

    * every peer: ``updated_at + peer_ttl`` (``ttl_expired``);
    * a downloading peer (running or back-to-source) with no piece progress:
      ``piece_updated_at + piece_timeout`` (``piece_timeout``);
    * a failed peer: ``updated_at + failed_peer_ttl`` (``failed``).

    Config ``[plugins.peer_lifetime]``: see :data:`SETTINGS`.
    """

    name = "peer_lifetime"
    settings: ClassVar[Section] = SETTINGS
    peer_ttl: float
    piece_timeout: float
    failed_peer_ttl: float

    def __init__(self) -> None:
        SETTINGS.init(self)

    @hookimpl
    def scheduler_configure(self, config: Mapping[str, Mapping[str, Any]]) -> None:
        SETTINGS.configure(self, config)

    @hookimpl
    def scheduler_peer_expiry(self, peer: Peer) -> Expiry:
        return self.peer_expiry(peer)

    def peer_expiry(self, peer: Peer) -> Expiry:
        if peer.state is PeerState.FAILED:
            return Expiry(peer.updated_at + self.failed_peer_ttl, Reason.FAILED)
        ttl = Expiry(peer.updated_at + self.peer_ttl, Reason.TTL_EXPIRED)
        if peer.state in ACTIVE_PEER_STATES:
            stall = Expiry(peer.piece_updated_at + self.piece_timeout, Reason.PIECE_TIMEOUT)
            return stall if stall.at < ttl.at else ttl
        return ttl
