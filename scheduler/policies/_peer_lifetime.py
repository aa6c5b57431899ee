from __future__ import annotations

from collections.abc import Mapping
from typing import Any, final

from ..core import (
    ACTIVE_PEER_STATES,
    Expiry,
    Peer,
    PeerState,
    Reason,
    parse_duration,
    section_reader,
)
from ..hookspecs import hookimpl

DEFAULT_PEER_TTL = 24 * 3600.0
DEFAULT_PIECE_TIMEOUT = 30 * 60.0
DEFAULT_FAILED_PEER_TTL = 0.0


@final
class PeerLifetime:
    """Peers live ``peer_ttl`` after their last update; stalled and failed peers go sooner.

    * every peer: ``updated_at + peer_ttl`` (``ttl_expired``);
    * a downloading peer (running or back-to-source) with no piece progress:
      ``piece_updated_at + piece_timeout`` (``piece_timeout``);
    * a failed peer: ``updated_at + failed_peer_ttl`` (``failed``).

    Config ``[plugins.peer_lifetime]``: ``peer_ttl`` (``24h``), ``piece_timeout``
    (``30m``), ``failed_peer_ttl`` (``0s``: a failed peer leaves at once).
    """

    name = "peer_lifetime"

    def __init__(self) -> None:
        self.peer_ttl = DEFAULT_PEER_TTL
        self.piece_timeout = DEFAULT_PIECE_TIMEOUT
        self.failed_peer_ttl = DEFAULT_FAILED_PEER_TTL

    @hookimpl
    def scheduler_configure(self, config: Mapping[str, Mapping[str, Any]]) -> None:
        keys = {"peer_ttl", "piece_timeout", "failed_peer_ttl"}
        section = section_reader(config, self.name, keys)
        for key in keys:
            current = getattr(self, key)
            value = parse_duration(section.get(key, current), f"plugins.{self.name}.{key}")
            setattr(self, key, value)

    @hookimpl
    def scheduler_peer_expiry(self, peer: Peer) -> Expiry:
        if peer.state is PeerState.FAILED:
            return Expiry(peer.updated_at + self.failed_peer_ttl, Reason.FAILED)
        ttl = Expiry(peer.updated_at + self.peer_ttl, Reason.TTL_EXPIRED)
        if peer.state in ACTIVE_PEER_STATES:
            stall = Expiry(peer.piece_updated_at + self.piece_timeout, Reason.PIECE_TIMEOUT)
            return stall if stall.at < ttl.at else ttl
        return ttl
