"""How long a batch of pieces takes: a fixed time per piece, or flows over shared links.

:class:`TimedTransfers` is the model without ``--bandwidth``: a piece takes
``piece_time`` times the parent host's speed factor (``origin_piece_time`` from the
origin), whoever else downloads. :class:`NetworkTransfers` is the model with it: a
batch is a flow from the parent host's uplink (or the origin's link) to the child
host's downlink, sharing both max-min fair with every other flow (:mod:`._network`).
"""

from __future__ import annotations

import math
from typing import Final, Protocol, final

from ._bandwidth import BandwidthSpec
from ._network import Flow, Link, Network
from ._queue import Action, EventQueue
from ._scenario import Scenario
from ._truth import Batch, GroundTruth, SimHost, SimPeer

#: Pieces are counted as through when this close to whole (float rounding).
_PIECE_SLACK: Final = 1e-9


class Transfers(Protocol):
    def add_host(self, host: SimHost) -> int:
        """A host joined: give it its links. Returns the uplink it announces (bits/s; 0:
        none, as a daemon that does not know its NIC)."""

    def batch(self, peer: SimPeer, parent_id: str | None, count: int, at: float) -> Batch:
        """The batch of ``count`` pieces ``peer`` starts now from ``parent_id`` (None: origin)."""

    def start(self, peer: SimPeer, batch: Batch, at: float, done: Action) -> None:
        """Start the batch; ``done(now)`` runs once every piece is through."""

    def pieces_by(self, peer: SimPeer, batch: Batch, at: float) -> int:
        """Pieces of the batch fully through by ``at`` (or by when it was stopped)."""

    def cost(self, batch: Batch, count: int, at: float) -> float:
        """Seconds the first ``count`` pieces of the batch took, reported at ``at``."""

    def stop(self, peer: SimPeer, at: float) -> None:
        """The peer's batch ends early (a new decision, an abandon): free what it holds."""

    def host_died(self, host: SimHost, at: float) -> None:
        """The host stops sending and receiving now."""


@final
class TimedTransfers:
    """A fixed time per piece: ``piece_time`` × the parent's speed, or ``origin_piece_time``."""

    def __init__(self, scenario: Scenario, queue: EventQueue, truth: GroundTruth) -> None:
        self.scenario = scenario
        self.queue = queue
        self.truth = truth

    def add_host(self, host: SimHost) -> int:
        return 0

    def batch(self, peer: SimPeer, parent_id: str | None, count: int, at: float) -> Batch:
        if parent_id is None:
            return Batch(None, at, count, self.scenario.origin_piece_time)
        speed = self.truth.peers[parent_id].host.plan.speed
        return Batch(parent_id, at, count, self.scenario.piece_time * speed)

    def start(self, peer: SimPeer, batch: Batch, at: float, done: Action) -> None:
        self.queue.schedule(at + batch.count * batch.piece_time, done)

    def pieces_by(self, peer: SimPeer, batch: Batch, at: float) -> int:
        return batch.done_by(at)

    def cost(self, batch: Batch, count: int, at: float) -> float:
        return count * batch.piece_time

    def stop(self, peer: SimPeer, at: float) -> None:
        return

    def host_died(self, host: SimHost, at: float) -> None:
        return


@final
class NetworkTransfers:
    """Every batch a flow over the parent's uplink and the child's downlink, max-min fair."""

    def __init__(
        self,
        scenario: Scenario,
        spec: BandwidthSpec,
        queue: EventQueue,
        truth: GroundTruth,
    ) -> None:
        self.scenario = scenario
        self.spec = spec
        self.queue = queue
        self.truth = truth
        self.network = Network(queue)
        self.origin = Link("origin", scenario.origin_bandwidth / 8)
        #: (uplink, downlink) per host id.
        self.links: dict[str, tuple[Link, Link]] = {}
        #: The flow of each peer's current (or last) batch.
        self._flows: dict[str, Flow] = {}
        #: The batch callbacks of the flows a host sends, to end them when it dies.
        self._done: dict[Flow, Action] = {}

    def add_host(self, host: SimHost) -> int:
        up, down = self.links_of(host)
        self.links[host.id] = (Link(f"{host.id}/up", up / 8), Link(f"{host.id}/down", down / 8))
        return int(up)

    def links_of(self, host: SimHost) -> tuple[float, float]:
        """The host's (uplink, downlink) in bits per second."""
        plan = host.plan
        return self.spec.links_of(self.scenario.seed, plan.index, plan.seed)

    def batch(self, peer: SimPeer, parent_id: str | None, count: int, at: float) -> Batch:
        return Batch(parent_id, at, count, 0.0)

    def start(self, peer: SimPeer, batch: Batch, at: float, done: Action) -> None:
        if batch.parent_id is None:
            up = self.origin
        else:
            up = self.links[self.truth.peers[batch.parent_id].host.id][0]
        down = self.links[peer.host.id][1]
        size = batch.count * self.scenario.piece_length

        def through(now: float) -> None:
            self._done.pop(flow, None)
            done(now)

        flow = self.network.start(up, down, size, at, through)
        self._flows[peer.id] = flow
        self._done[flow] = done

    def pieces_by(self, peer: SimPeer, batch: Batch, at: float) -> int:
        flow = self._flows.get(peer.id)
        if flow is None:
            return 0
        through = flow.transferred(at) / self.scenario.piece_length
        return min(batch.count, math.floor(through + _PIECE_SLACK))

    def cost(self, batch: Batch, count: int, at: float) -> float:
        return max(0.0, at - batch.started_at)

    def stop(self, peer: SimPeer, at: float) -> None:
        flow = self._flows.pop(peer.id, None)
        if flow is not None:
            self._done.pop(flow, None)
            self.network.stop(flow, at)

    def host_died(self, host: SimHost, at: float) -> None:
        """Its uploads stop where they are (the children learn at their batch's end, now);
        its downloads stop too."""
        links = self.links.get(host.id)
        if links is None:
            return
        up, down = links
        for flow in list(down.flows):
            self._done.pop(flow, None)
            self.network.stop(flow, at)
        for flow in list(up.flows):
            self.network.stop(flow, at)
            done = self._done.pop(flow, None)
            if done is not None:
                self.queue.schedule(at, done)
