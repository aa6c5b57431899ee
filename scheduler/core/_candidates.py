"""The invariants of a parent: why a candidate may never be handed to a child.

A plain function, so that each rule is tested (and mutated) on its own. It
answers the first rule a candidate breaks, cheapest first, or None for a fit one.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Final

from ._lifecycle import PeerState
from ._model import Host, Peer

#: States in which a peer may serve pieces to others.
PARENT_STATES: Final = frozenset({PeerState.RUNNING, PeerState.BACK_TO_SOURCE, PeerState.SUCCEEDED})
# unfit_reason runs for every candidate of every decision, so it tests the parent states
# one by one, by identity, against module constants: an enum member hashes in Python,
# and reading one off its class (``PeerState.RUNNING``) costs about 0.1 µs on 3.11.
_RUNNING: Final = PeerState.RUNNING
_BACK_TO_SOURCE: Final = PeerState.BACK_TO_SOURCE
_SUCCEEDED: Final = PeerState.SUCCEEDED


def unfit_reason(
    child: Peer,
    candidate: Peer,
    candidate_host: Host | None,
    *,
    blocked: Collection[str],
    is_bad: Callable[[str], bool],
    closes_cycle: Callable[[str, str], bool],
) -> str | None:
    """Why ``candidate`` may not be a parent of ``child`` (None: it may).

    ``candidate_host`` is the candidate's live host (None once it is gone);
    ``blocked`` the child's blocklist; ``is_bad(peer_id)`` the bad-node rule over
    the candidate's piece costs; ``closes_cycle(child_id, candidate_id)`` True when
    the child is the candidate or one of its ancestors through handed-out edges.
    """
    if candidate.id == child.id:
        return "the child itself"
    if candidate.task_id != child.task_id:
        return "a peer of another task"
    if candidate.host_id == child.host_id:
        return "a peer on the child's host"
    if candidate_host is None or not candidate_host.schedulable:
        return "its host is not connected"
    state = candidate.state
    if state is not _RUNNING and state is not _BACK_TO_SOURCE and state is not _SUCCEEDED:
        return f"it is {state.value}"
    if state is not _BACK_TO_SOURCE and not candidate.finished_pieces:
        return "it has no finished piece"
    if candidate.id in blocked:
        return "blocklisted for this child"
    if candidate_host.concurrent_upload_count >= candidate_host.info.concurrent_upload_limit:
        return "its host has no free upload slot"
    if is_bad(candidate.id):
        return "a bad node (its piece costs are outliers)"
    if closes_cycle(candidate.id, child.id):
        return "it would close a cycle"
    return None
