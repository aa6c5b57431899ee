"""Links and flows: concurrent transfers share links max-min fair, in virtual time.

Every host has an uplink and a downlink, and the origin has one link of its own
(its capacity, ``--origin-bandwidth``). A transfer is a flow from a sender's uplink
(or the origin's) to a receiver's downlink. Whenever a flow starts or stops, the
rates of the flows it shares a link with, directly or through others (its
component), are recomputed by progressive filling: the link whose fair share is
smallest is the bottleneck of its flows, which get that share and are set aside,
and so on. So no link ever carries more than its capacity, and no flow could go
faster without slowing a flow that is no faster than it (max-min fairness).

A flow's completion is an event in the simulator's queue; a flow whose rate did
not change keeps its event, so a change costs events only where rates moved.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Final, final

from ._queue import EventQueue

#: Bytes a flow may be short of its size and still be done (float rounding).
EPSILON_BYTES: Final = 1e-6


@final
class Link:
    """One direction of one host's connection (or the origin's): a capacity, shared."""

    __slots__ = ("capacity", "carried", "flows", "name")

    def __init__(self, name: str, capacity: float) -> None:
        if not (math.isfinite(capacity) and capacity > 0):
            raise ValueError(f"link {name}: capacity must be > 0 bytes/s, got {capacity!r}")
        self.name = name
        #: Bytes per second.
        self.capacity = capacity
        #: The flows on it, in the order they started (dicts, not sets: a run must not
        #: depend on object addresses).
        self.flows: dict[Flow, None] = {}
        #: Bytes carried so far (for the conservation checks).
        self.carried = 0.0


@final
class Flow:
    """``size`` bytes from ``up`` to ``down``; ``on_done(now)`` runs when they are through."""

    __slots__ = ("down", "on_done", "rate", "remaining", "size", "up", "updated_at", "version")

    def __init__(
        self, up: Link, down: Link, size: float, at: float, on_done: Callable[[float], None]
    ) -> None:
        self.up = up
        self.down = down
        self.size = size
        self.remaining = size
        self.rate = 0.0
        self.updated_at = at
        self.on_done = on_done
        #: Bumped whenever its completion event is replaced; older events are void.
        self.version = 0

    @property
    def links(self) -> tuple[Link, Link]:
        return (self.up, self.down)

    def transferred(self, at: float) -> float:
        """Bytes through by ``at`` (at most its size)."""
        moved = self.size - self.remaining + self.rate * max(0.0, at - self.updated_at)
        return min(self.size, moved)


@final
class Network:
    """The live flows over the links; rates are max-min fair at every instant."""

    def __init__(self, queue: EventQueue) -> None:
        self.queue = queue
        self.flows: dict[Flow, None] = {}

    def start(
        self, up: Link, down: Link, size: float, at: float, on_done: Callable[[float], None]
    ) -> Flow:
        """A new flow of ``size`` bytes (> 0); ``on_done`` runs once it is through."""
        if not size > 0:
            raise ValueError(f"a flow needs a size > 0 bytes, got {size!r}")
        flow = Flow(up, down, size, at, on_done)
        self.flows[flow] = up.flows[flow] = down.flows[flow] = None
        self._rebalance(flow.links, at)
        return flow

    def stop(self, flow: Flow, at: float) -> float:
        """Take ``flow`` off its links now; return the bytes it got through."""
        if flow not in self.flows:
            return flow.size - flow.remaining
        self._advance(flow, at)
        self._remove(flow)
        self._rebalance(flow.links, at)
        return flow.size - flow.remaining

    # --- internals ---------------------------------------------------------------------

    def _remove(self, flow: Flow) -> None:
        del self.flows[flow], flow.up.flows[flow], flow.down.flows[flow]
        flow.rate = 0.0
        flow.version += 1  # its completion event, if any, is void

    def _advance(self, flow: Flow, at: float) -> None:
        elapsed = at - flow.updated_at
        if elapsed > 0:
            moved = min(flow.remaining, flow.rate * elapsed)
            flow.remaining -= moved
            flow.up.carried += moved
            flow.down.carried += moved
        flow.updated_at = max(flow.updated_at, at)

    def _rebalance(self, links: Iterable[Link], at: float) -> None:
        flows = _component(links)
        for flow in flows:
            self._advance(flow, at)
        rates = max_min_rates(flows)
        for flow in flows:
            rate = rates[flow]
            if rate != flow.rate or flow.version == 0:
                flow.rate = rate
                flow.version += 1
                self._schedule(flow, at)

    def _schedule(self, flow: Flow, at: float) -> None:
        if flow.rate <= 0:
            return  # it waits for capacity; a later change reschedules it
        version = flow.version
        done_at = at + flow.remaining / flow.rate

        def complete(now: float) -> None:
            if flow.version == version and flow in self.flows:
                self._advance(flow, now)
                flow.remaining = 0.0
                self._remove(flow)
                self._rebalance(flow.links, now)
                flow.on_done(now)

        self.queue.schedule(done_at, complete)


def _component(links: Iterable[Link]) -> list[Flow]:
    """Every flow that shares a link with these, directly or through other flows."""
    seen_links: set[Link] = set()
    seen: dict[Flow, None] = {}
    stack = list(links)
    while stack:
        link = stack.pop()
        if link in seen_links:
            continue
        seen_links.add(link)
        for flow in link.flows:
            if flow not in seen:
                seen[flow] = None
                stack.extend(flow.links)
    return list(seen)


def max_min_rates(flows: Iterable[Flow]) -> dict[Flow, float]:
    """Progressive filling: the max-min fair rate of every flow over its two links."""
    rates: dict[Flow, float] = {}
    residual: dict[Link, float] = {}
    users: dict[Link, dict[Flow, None]] = {}
    for flow in flows:
        for link in flow.links:
            residual.setdefault(link, link.capacity)
            users.setdefault(link, {})[flow] = None
    while users:
        bottleneck = min(users, key=lambda link: (residual[link] / len(users[link]), link.name))
        share = max(0.0, residual[bottleneck] / len(users[bottleneck]))
        for flow in list(users[bottleneck]):
            rates[flow] = share
            for link in flow.links:
                members = users[link]
                del members[flow]
                residual[link] -= share
                if not members:
                    del users[link]
    return rates
