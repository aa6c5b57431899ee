"""The scheduling invariants, checked from the outside: never a dead or useless parent.

:func:`check_decision` judges one decision right after the mutation that made
it, using only the read-only view; :class:`PushCheck` checks that a mutation
pushed a fresh decision to exactly the children that lost a parent in it,
once each (unless the policies disable pushes). Both raise
:class:`InvariantError`. :class:`~._simulation.Simulation` runs them after
every step, so every plugin's state machine exercises them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import final

from ..core import (
    CHILD_STATES,
    PARENT_STATES,
    Decision,
    Event,
    Peer,
    PeerScheduled,
    PeerState,
    PolicySet,
    ScheduleAction,
    StateView,
    is_bad_node,
)


class InvariantError(AssertionError):
    """A core invariant does not hold; the message says which and where."""


def parent_problems(view: StateView, child: Peer, parent_id: str) -> list[str]:
    """Every rule ``parent_id`` breaks as a parent of ``child`` right now."""
    if not view.has_peer(parent_id):
        return [f"{parent_id} is not a live peer"]
    parent = view.peer(parent_id)
    problems: list[str] = []
    if parent.id == child.id:
        problems.append("it is the child itself")
    if parent.task_id != child.task_id:
        problems.append(f"it downloads another task ({parent.task_id})")
    if parent.host_id == child.host_id:
        problems.append("it is on the child's host")
    if not view.is_schedulable(parent.host_id):
        problems.append(f"its host {parent.host_id} is not connected")
    else:
        host = view.host(parent.host_id)
        if host.concurrent_upload_count > host.info.concurrent_upload_limit:
            problems.append(
                f"its host uploads {host.concurrent_upload_count} "
                f"> limit {host.info.concurrent_upload_limit}"
            )
    if parent.state not in PARENT_STATES:
        problems.append(f"it is {parent.state.value}")
    if not parent.finished_pieces and parent.state is not PeerState.BACK_TO_SOURCE:
        problems.append("it has no finished piece and does not go to the origin")
    if parent.id in view.blocked_parents_of(child.id):
        problems.append("the child blocklisted it")
    if is_bad_node(view.piece_costs_of(parent.id)):
        problems.append("it is a bad node")
    if child.id in ancestors(view, parent.id):
        problems.append("the child is its ancestor (a cycle)")
    return problems


def ancestors(view: StateView, peer_id: str) -> set[str]:
    """Every peer reachable from ``peer_id`` through handed-out parent edges (a full walk)."""
    seen: set[str] = set()
    frontier = [peer_id]
    while frontier:
        for parent_id in view.parents_of(frontier.pop()):
            if parent_id not in seen:
                seen.add(parent_id)
                frontier.append(parent_id)
    return seen


def check_decision(
    view: StateView, child_id: str, decision: Decision, *, limit: int | None = None
) -> None:
    """Raise :class:`InvariantError` if ``decision`` hands ``child_id`` a dead or useless parent.

    Call it right after the mutation that returned the decision. ``limit`` is the
    ``candidate_parent_limit`` in force, if known.
    """
    if not view.has_peer(child_id):
        raise InvariantError(f"decision for {child_id}, which is not a live peer")
    child = view.peer(child_id)
    parents = decision.parents
    where = f"decision {decision.action.value} for {child_id}"
    if (decision.action is ScheduleAction.PARENTS) != bool(parents):
        raise InvariantError(f"{where}: parents {parents}")
    if len(set(parents)) != len(parents):
        raise InvariantError(f"{where}: a parent is named twice: {parents}")
    if limit is not None and len(parents) > limit:
        raise InvariantError(f"{where}: {len(parents)} parents > candidate_parent_limit {limit}")
    if view.parents_of(child_id) != parents:
        raise InvariantError(f"{where}: hands out {parents}, holds {view.parents_of(child_id)}")
    for parent_id in parents:
        problems = parent_problems(view, child, parent_id)
        if problems:
            raise InvariantError(f"{where}: parent {parent_id}: {'; '.join(problems)}")


def check_decisions(view: StateView, events: Iterable[Event], *, limit: int | None = None) -> None:
    """:func:`check_decision` for every :class:`PeerScheduled` among ``events``."""
    for event in events:
        if isinstance(event, PeerScheduled):
            check_decision(view, event.peer_id, event.decision, limit=limit)


@final
class PushCheck:
    """Who held which parents before a mutation, to judge the pushes it made."""

    def __init__(self, view: StateView) -> None:
        #: child -> its parents before the mutation, each with "could it feed then?".
        self.before: dict[str, tuple[Peer, list[tuple[Peer, bool]]]] = {}
        for child in view.peers():
            parents = view.parents_of(child.id)
            if parents:
                held = [(view.peer(p), _serving(view, view.peer(p))) for p in parents]
                self.before[child.id] = (child, held)

    def check(
        self, view: StateView, events: Iterable[Event], policies: PolicySet, now: float
    ) -> None:
        """Pushes went to exactly the children still downloading that lost a parent, once each."""
        pushed: list[str] = []
        for event in events:
            if isinstance(event, PeerScheduled) and (event.pushed or event.cause == "parent_lost"):
                if not (event.pushed and event.cause == "parent_lost"):
                    raise InvariantError(f"a push must say pushed and parent_lost: {event}")
                pushed.append(event.peer_id)
        if len(set(pushed)) != len(pushed):
            raise InvariantError(f"more than one push for a child in one mutation: {pushed}")
        expected: list[str] = []
        for child_id, (child, held) in self.before.items():
            lost = [
                parent
                for parent, serving in held
                if not view.has_peer(parent.id) or (serving and not _alive(view, parent))
            ]
            if not lost or not view.has_peer(child_id):
                continue
            if child.state not in CHILD_STATES or not view.is_schedulable(child.host_id):
                continue
            votes = [policies.proactive_push(child, parent, view, now) for parent in lost]
            if all(votes):
                expected.append(child_id)
        if sorted(pushed) != sorted(expected):
            raise InvariantError(f"pushed to {sorted(pushed)}, expected {sorted(expected)}")


def _serving(view: StateView, parent: Peer) -> bool:
    return parent.state is not PeerState.FAILED and view.is_schedulable(parent.host_id)


def _alive(view: StateView, parent: Peer) -> bool:
    return view.has_peer(parent.id) and _serving(view, view.peer(parent.id))
