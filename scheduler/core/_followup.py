"""What follows a mutation: the decision's bookkeeping kept in step, and the proactive pushes.

The facade tells :class:`FollowUp` about every mutation through
:meth:`FollowUp.follow`, with the events the mutation returned (and the peer
whose state moved). It updates what the :class:`~._pipeline.DecisionPipeline`
reads (the feeders, the parent edges, the reservations and seed fetches, the
connected seeds, the live peers), and answers with the pushes that mutation
calls for: one fresh decision per child that lost a parent, unless a plugin
objects. It never decides itself; the pipeline does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Final, final

from ._decision import ScheduleCause
from ._events import (
    Event,
    Eviction,
    HostDisconnected,
    HostReconnected,
    HostRegistered,
    PeerRegistered,
)
from ._feeders import can_feed
from ._lifecycle import PeerState
from ._model import HostType, Peer, RecordKind
from ._origin import SeedFetch
from ._pipeline import CHILD_STATES, DecisionPipeline
from ._view import StateView

#: States after which a child holds no parent and no reservation.
_ENDED: Final = frozenset({PeerState.SUCCEEDED, PeerState.FAILED})


@final
class FollowUp:
    """Catch the pipeline's bookkeeping up with each mutation; return the pushes it calls for."""

    def __init__(self, pipeline: DecisionPipeline) -> None:
        self._pipeline = pipeline
        #: Children who lost parents in deferred mutations, until :meth:`flush_pushes`.
        self._deferred = _Changes()
        self._view: StateView | None = None
        self._handlers: Mapping[type[Event], Callable[[Event, _Changes], None]] = {
            PeerRegistered: self._on_peer_registered,  # type: ignore[dict-item]
            HostRegistered: self._on_host_registered,  # type: ignore[dict-item]
            HostDisconnected: self._on_host_disconnected,  # type: ignore[dict-item]
            HostReconnected: self._on_host_reconnected,  # type: ignore[dict-item]
            Eviction: self._on_eviction,  # type: ignore[dict-item]
        }

    def connect(self, view: StateView) -> None:
        self._view = view

    @property
    def view(self) -> StateView:
        if self._view is None:
            raise RuntimeError("the follow-up is not connected to a view")
        return self._view

    def follow(
        self, events: list[Event], now: float, changed: str | None = None, *, defer: bool = False
    ) -> list[Event]:
        """Catch up with a mutation (``changed``: the peer whose state moved); return pushes.

        ``defer``: keep the pushes the mutation calls for until :meth:`flush_pushes`
        (returning none now), coalesced with those of other deferred mutations.
        """
        changes = self._deferred if defer else _Changes()
        if changed is not None:
            self._peer_changed(self.view.peer(changed), changes)
        for event in events:
            handler = self._handlers.get(type(event))
            if handler is not None:
                handler(event, changes)
        return [] if defer else self._push(changes, now)

    @property
    def pushes_pending(self) -> bool:
        """Whether deferred mutations left children to push to (see :meth:`flush_pushes`)."""
        return bool(self._deferred.children)

    def flush_pushes(self, now: float, max_children: int | None = None) -> list[Event]:
        """The pushes of the deferred mutations so far: one per child, oldest first.

        ``max_children`` bounds the call (the rest stay pending, for the next call).
        """
        changes, self._deferred = self._deferred, _Changes()
        if max_children is not None and len(changes.children) > max_children:
            later = list(changes.children.items())[max_children:]
            for child_id, _ in later:
                del changes.children[child_id]
            # Kept in order, ahead of anything deferred meanwhile (nothing can be: the
            # facade's calls do not interleave).
            self._deferred.children.update(later)
        return self._push(changes, now)

    def _peer_changed(self, peer: Peer, changes: _Changes) -> None:
        pipeline = self._pipeline
        pipeline.feeders.refresh(peer, self.view.is_schedulable(peer.host_id))
        if peer.finished_pieces:
            pipeline.origin.end_fetch_of_peer(peer.id)  # a seed peer holding a piece: done
        if peer.state is PeerState.BACK_TO_SOURCE or peer.state in _ENDED:
            pipeline.origin.release(peer.id)  # the reservation is used, or no longer needed
            # Downloading from the origin, or done: it holds no parent (nor their slots),
            # so a parent's death no longer concerns it.
            pipeline.edges.release_child(peer.id)
        if peer.state in _ENDED:
            pipeline.origin.end_fetch_of_peer(peer.id)
        if peer.state is PeerState.FAILED:
            changes.lost(peer, pipeline.edges.drop_parent(peer.id))

    def _on_peer_registered(self, event: PeerRegistered, changes: _Changes) -> None:
        pipeline = self._pipeline
        peer = pipeline.peers[event.peer_id] = self.view.peer(event.peer_id)
        if event.host_id in pipeline.seeds and pipeline.origin.fetch_of(event.task_id) is None:
            pipeline.origin.start_fetch(SeedFetch(event.task_id, event.host_id, peer.id, event.at))

    def _on_host_registered(self, event: HostRegistered, changes: _Changes) -> None:
        if self.view.host(event.host_id).info.type is HostType.SEED:
            self._pipeline.seeds.add(event.host_id)

    def _on_host_disconnected(self, event: HostDisconnected, changes: _Changes) -> None:
        self._host_gone(event.host_id)
        pipeline = self._pipeline
        for peer in self.view.peers_of_host(event.host_id):
            pipeline.feeders.discard(peer.id)
            changes.lost(peer, pipeline.edges.children_of(peer.id))

    def _on_host_reconnected(self, event: HostReconnected, changes: _Changes) -> None:
        self._on_host_registered(HostRegistered(event.host_id, event.at), changes)
        for peer in self.view.peers_of_host(event.host_id):
            self._pipeline.feeders.refresh(peer, True)

    def _on_eviction(self, event: Eviction, changes: _Changes) -> None:
        if event.kind is RecordKind.HOST:
            self._host_gone(event.record_id)
        elif event.kind is RecordKind.PEER:
            self._peer_gone(event.record_id, changes)

    def _host_gone(self, host_id: str) -> None:
        self._pipeline.seeds.discard(host_id)
        self._pipeline.origin.end_fetches_of_host(host_id)

    def _peer_gone(self, peer_id: str, changes: _Changes) -> None:
        pipeline = self._pipeline
        peer = pipeline.peers.pop(peer_id)
        pipeline.feeders.discard(peer_id)
        pipeline.edges.release_child(peer_id)
        changes.lost(peer, pipeline.edges.drop_parent(peer_id))
        pipeline.origin.release(peer_id)
        pipeline.origin.end_fetch_of_peer(peer_id)
        pipeline.forget(peer_id)

    def _push(self, changes: _Changes, now: float) -> list[Event]:
        """One fresh decision per affected child still downloading, unless a plugin objects."""
        events: list[Event] = []
        view, pipeline = self.view, self._pipeline
        policies = pipeline.policies
        for child_id, lost_parents in changes.children.items():
            if not view.has_peer(child_id):
                continue
            child = view.peer(child_id)
            if child.state not in CHILD_STATES or not view.is_schedulable(child.host_id):
                continue
            # Every plugin hears about every lost parent (no short cut), then one vote.
            votes = [policies.proactive_push(child, p, view, now) for p in lost_parents]
            if all(votes):
                events.extend(pipeline.decide(child, now, ScheduleCause.PARENT_LOST).events())
        return events

    def invariant_violations(self) -> list[str]:
        """Edges, slots, feeders and reservations against the records. O(n)."""
        view, pipeline = self.view, self._pipeline
        edges = pipeline.edges
        problems: list[str] = []
        live = {peer.id for peer in view.peers()}
        if set(pipeline.peers) != live:
            problems.append("scheduling tracks other peers than the ledger holds")
        slots = edges.slots_by_host()
        if edges.pair_slot_counts() != edges.held_pair_slots():
            problems.append("slots held per (parent host, child host) disagree with the edges")
        for host in view.hosts():
            if host.concurrent_upload_count != slots.get(host.id, 0):
                problems.append(
                    f"host {host.id}: {host.concurrent_upload_count} upload slots held, "
                    f"{slots.get(host.id, 0)} handed-out edges"
                )
        for child_id in live:
            for parent_id in edges.parents_of(child_id):
                if parent_id not in live:
                    problems.append(f"child {child_id} holds evicted parent {parent_id}")
        for feeder in pipeline.feeders.peers():
            if not view.has_peer(feeder.id) or view.peer(feeder.id) is not feeder:
                problems.append(f"peer {feeder.id}: the feeder index holds a stale record")
        for peer in view.peers():
            should = view.is_schedulable(peer.host_id) and can_feed(peer)
            if should != (peer.id in pipeline.feeders):
                problems.append(f"peer {peer.id}: feeder index says {not should}")
        problems.extend(pipeline.origin.violations(live))
        return problems


@final
class _Changes:
    """What one mutation did to the parents handed out: affected children, in order."""

    __slots__ = ("children",)

    def __init__(self) -> None:
        self.children: dict[str, list[Peer]] = {}

    def lost(self, parent: Peer, children: Iterable[str]) -> None:
        for child_id in children:
            self.children.setdefault(child_id, []).append(parent)
