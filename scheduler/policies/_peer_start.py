from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Final, final

from ..core import RECEIVED_PEER_STATES, Expiry, Peer, Reason
from ..hookspecs import hookimpl
from ..settings import Section, duration

SETTINGS: Final = Section.plugin(
    "peer_start",
    duration(
        "start_timeout",
        30,
        "a peer handed parents that neither starts nor reports a piece within this long is evicted",
        details="(reason `start_timeout`): it gives its parents' upload slots back. Counted "
        "from the first decision that handed it parents; `download_started`, "
        "`back_to_source` or a piece report stop it.",
        positive=True,
    ),
)


@final
class PeerStart:
    """A peer that holds parents but never starts downloading gives their slots back.

    Every parent handed out holds one of its host's upload slots. A peer that
    registers, takes parents and then neither sends ``download_started`` (or
    ``back_to_source``) nor reports a piece would hold them for as long as it lives,
    so a few such peers could take every slot of a task's feeders. This policy gives
    such a peer a deadline of ``handed_parents_at + start_timeout``.

    It is separate from ``peer_lifetime`` so that a policy set replacing the peer
    lifetimes (``dragonfly_compat``) keeps it. Config ``[plugins.peer_start]``.
    """

    name = "peer_start"
    settings: ClassVar[Section] = SETTINGS
    start_timeout: float

    def __init__(self) -> None:
        SETTINGS.init(self)

    @hookimpl
    def scheduler_configure(self, config: Mapping[str, Mapping[str, Any]]) -> None:
        SETTINGS.configure(self, config)

    @hookimpl
    def scheduler_peer_expiry(self, peer: Peer) -> Expiry | None:
        return self.peer_expiry(peer)

    def peer_expiry(self, peer: Peer) -> Expiry | None:
        handed = peer.handed_parents_at
        if handed is None or peer.state not in RECEIVED_PEER_STATES:
            return None
        return Expiry(handed + self.start_timeout, Reason.START_TIMEOUT)
