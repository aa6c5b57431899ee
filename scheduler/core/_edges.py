"""The parent edges handed out to children, and the upload slots they hold.

Each edge child -> parent holds one upload slot on the parent's host
(``Host.concurrent_upload_count``) from the moment it is handed out until the
child is given other parents, finishes, fails or leaves, or the parent goes.
The reverse index (parent -> children) finds whom to push to when a parent dies.
Slots are also counted per (parent host, child host) pair, so that the share of a
host's slots held by the peers of one other host can be capped.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Final, final

from ._model import Host, Peer

#: Ancestors examined at most when checking that a new edge closes no cycle;
#: past this the candidate is refused (an unknown answer is never a yes).
MAX_ANCESTOR_WALK: Final = 256
#: Descendants of a child collected at most, once per decision, to answer every
#: candidate's cycle check by one membership test; past this, each candidate is
#: walked instead (:meth:`ParentEdges.reaches`).
MAX_DESCENDANT_WALK: Final = 4096


@final
class ParentEdges:
    """child -> parents (best first) and parent -> children, with slot accounting."""

    def __init__(self, host: Callable[[str], Host | None]) -> None:
        #: Looks up a live host by id (None once it is gone: nothing to release then).
        self._host = host
        self._parents: dict[str, tuple[str, ...]] = {}
        self._children: dict[str, set[str]] = {}
        #: The host of every parent that has children (a peer never changes host).
        self._host_of: dict[str, str] = {}
        #: The host of every child that has parents.
        self._child_host: dict[str, str] = {}
        #: Slots held per (parent host, child host), only pairs holding some.
        self._pair_slots: dict[tuple[str, str], int] = {}

    # --- queries -----------------------------------------------------------------------

    def parents_of(self, child_id: str) -> tuple[str, ...]:
        return self._parents.get(child_id, ())

    def children_of(self, parent_id: str) -> tuple[str, ...]:
        return tuple(sorted(self._children.get(parent_id, ())))

    def has_children(self, parent_id: str) -> bool:
        return parent_id in self._children

    def edge_count(self) -> int:
        return sum(len(parents) for parents in self._parents.values())

    def slots_by_host(self) -> dict[str, int]:
        """Edges per parent host: what each host's ``concurrent_upload_count`` must be."""
        slots: dict[str, int] = {}
        for parent_id, children in self._children.items():
            host_id = self._host_of[parent_id]
            slots[host_id] = slots.get(host_id, 0) + len(children)
        return slots

    def pair_slots(self, parent_host_id: str, child_host_id: str) -> int:
        """Slots of ``parent_host_id`` held by children on ``child_host_id``."""
        return self._pair_slots.get((parent_host_id, child_host_id), 0)

    def pair_slot_counts(self) -> dict[tuple[str, str], int]:
        """Slots per (parent host, child host) recounted from the edges (for the invariants)."""
        counts: dict[tuple[str, str], int] = {}
        for child_id, parents in self._parents.items():
            for parent_id in parents:
                # An edge to an unknown parent is named by the caller's own check.
                parent_host = self._host_of.get(parent_id)
                if parent_host is not None:
                    key = (parent_host, self._child_host.get(child_id, ""))
                    counts[key] = counts.get(key, 0) + 1
        return counts

    def held_pair_slots(self) -> dict[tuple[str, str], int]:
        return dict(self._pair_slots)

    def reaches(self, start_id: str, target_id: str, limit: int = MAX_ANCESTOR_WALK) -> bool:
        """True if ``target`` is ``start`` or one of its ancestors, or the walk is too long."""
        if start_id not in self._parents:
            return start_id == target_id  # no parent: the usual answer, without a walk
        seen = _closure(start_id, self._parents, limit, target_id)
        return seen is None or target_id in seen

    def descendants(self, peer_id: str, limit: int = MAX_DESCENDANT_WALK) -> set[str] | None:
        """``peer_id`` and every peer that has it as an ancestor; None past ``limit`` peers.

        A candidate closes a cycle with a child exactly when it is in the child's set
        (the child is the candidate or one of its ancestors), so one walk down from the
        child answers every candidate of a decision. A child that feeds nobody, as a
        new one, costs one look-up.
        """
        if peer_id not in self._children:
            return {peer_id}
        return _closure(peer_id, self._children, limit)

    # --- mutations ---------------------------------------------------------------------

    def hand_out(self, child_id: str, parents: Iterable[Peer], *, child_host: str) -> None:
        """Give ``child`` (a peer of ``child_host``) these parents, replacing any it had."""
        self.release_child(child_id)
        chosen = tuple(parents)
        if not chosen:
            return
        self._parents[child_id] = tuple(p.id for p in chosen)
        self._child_host[child_id] = child_host
        for parent in chosen:
            self._children.setdefault(parent.id, set()).add(child_id)
            self._host_of[parent.id] = parent.host_id
            self._take_slot(parent.host_id, +1)
            self._count_pair(parent.host_id, child_host, +1)

    def release_child(self, child_id: str) -> tuple[str, ...]:
        """The child no longer downloads from its parents: free their slots."""
        parents = self._parents.pop(child_id, ())
        for parent_id in parents:
            self._unlink(parent_id, child_id)
        self._child_host.pop(child_id, None)
        return parents

    def drop_parent(self, parent_id: str) -> tuple[str, ...]:
        """The parent is gone: remove its edges, free its slots; return its children."""
        children = self.children_of(parent_id)
        for child_id in children:
            remaining = tuple(p for p in self._parents[child_id] if p != parent_id)
            self._unlink(parent_id, child_id)
            if remaining:
                self._parents[child_id] = remaining
            else:
                del self._parents[child_id]
                del self._child_host[child_id]
        return children

    # --- internals ---------------------------------------------------------------------

    def _unlink(self, parent_id: str, child_id: str) -> None:
        children = self._children[parent_id]
        children.discard(child_id)
        parent_host = self._host_of[parent_id]
        self._take_slot(parent_host, -1)
        self._count_pair(parent_host, self._child_host[child_id], -1)
        if not children:
            del self._children[parent_id]
            del self._host_of[parent_id]

    def _take_slot(self, host_id: str, delta: int) -> None:
        host = self._host(host_id)
        if host is not None:
            host.concurrent_upload_count += delta

    def _count_pair(self, parent_host_id: str, child_host_id: str, delta: int) -> None:
        key = (parent_host_id, child_host_id)
        count = self._pair_slots.get(key, 0) + delta
        if count:
            self._pair_slots[key] = count
        else:
            del self._pair_slots[key]


def _closure(
    start: str, links: Mapping[str, Collection[str]], limit: int, target: str | None = None
) -> set[str] | None:
    """``start`` and every node reachable from it through ``links``; None past ``limit``
    nodes. With a ``target``, the walk stops once it reaches it (the set then holds it)."""
    seen = {start}
    frontier = [start]
    while frontier:
        node = frontier.pop()
        if node == target:
            return seen
        for linked in links.get(node, ()):
            if linked not in seen:
                if len(seen) >= limit:
                    return None
                seen.add(linked)
                frontier.append(linked)
    return seen
