"""What one call of the facade answers: small frozen classes, read by the caller as they are.

A session answers ``announce_host`` and ``register_peer`` from one call of the
core each: :meth:`~._state.SchedulerState.announce` gives an :class:`Announced`
(the host's deadline and reconnect grace with the events), and
:meth:`~._state.SchedulerState.register_and_schedule` (or
:meth:`~._state.SchedulerState.reschedule`) a :class:`Scheduled` (the decision and
each parent as the child reaches it, read in the decision's turn, with every
event the call caused).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple, final

import attrs

from ._decision import Decision
from ._events import Event, Expiry, PeerScheduled
from ._model import HostType, Peer
from ._view import StateView


@final
@attrs.frozen
class Announced:
    """The answer to an announce: the host's deadline, its grace, and the events."""

    host_id: str
    #: The deadline the policies now hold for the host (None: none evicts it).
    expiry: Expiry | None
    #: Seconds a disconnect now would leave the host before eviction (None: never).
    reconnect_grace: float | None
    #: Everything the announce caused, in order (a reconnect, superseded hosts, pushes).
    events: tuple[Event, ...]


class ScheduledParent(NamedTuple):
    """A parent handed to a child, as the child reaches it (read when it was chosen).

    A named tuple, not an attrs class: a decision builds up to
    ``candidate_parent_limit`` of them on the request's path, and a tuple is built in
    half the time of a frozen attrs instance.
    """

    peer_id: str
    host_id: str
    ip: str
    download_port: int
    finished_piece_count: int
    host_type: HostType


@final
@attrs.frozen
class Scheduled:
    """The answer to a child's request: its decision, its parents, and the events."""

    #: The decision's event (also in :attr:`events`): cause, time, the decision.
    scheduled: PeerScheduled
    #: The parents of a ``parents`` decision, best first (empty for any other action).
    parents: tuple[ScheduledParent, ...]
    #: Everything the call caused, in order: a registration's events, the decision,
    #: a seed fetch it asked for.
    events: tuple[Event, ...]

    @property
    def decision(self) -> Decision:
        return self.scheduled.decision


def scheduled_parents(view: StateView, parents: Iterable[Peer]) -> tuple[ScheduledParent, ...]:
    """Each parent with its host's address, read from the view now."""
    host = view.host
    out: list[ScheduledParent] = []
    for peer in parents:
        info = host(peer.host_id).info
        out.append(
            ScheduledParent(
                peer.id,
                peer.host_id,
                info.ip,
                info.download_port,
                len(peer.finished_pieces),
                info.type,
            )
        )
    return tuple(out)
