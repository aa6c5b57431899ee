"""Core decisions as protocol messages, and where the unsolicited ones go.

Sans-IO, like the rest of the session rules. Two jobs:

* :func:`schedule_reply` is the answer to a request: the core's typed
  :class:`~scheduler.core.Scheduled` copied into a protocol ``schedule`` (each
  parent as the core described it in the decision's turn); :func:`schedule_message`
  is a push's, each parent described from the view (host address, download port,
  finished pieces, host type) when the push is routed;
* :func:`route_unsolicited` takes the events of *any* mutation (a session's
  message, a GC pass, an admin eviction, a dropped session) and hands every
  proactive push (``PeerScheduled`` with ``pushed``) to the session of the
  child's host, coalesced to one per child per batch, and every
  ``SeedFetchRequested`` to the seed host's session as ``fetch_task``. A message
  for a host with no session is dropped and counted, so is one that does not
  fit in the session's outbox (that session ends with ``outbox_overflow``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Final, final

import attrs

from ..core import (
    Decision,
    Event,
    HostType,
    PeerScheduled,
    ScheduleAction,
    Scheduled,
    SeedFetchRequested,
    StateView,
)
from ..protocol import FetchTask, ParentPayload, Schedule, ServerMessage, TaskPayload
from ._registry import Delivery, HostRegistry

log = logging.getLogger("scheduler.session")

#: The ``retry_after`` of the fallback when every parent of a decision vanished.
_GONE_RETRY_AFTER: Final = 0.0
#: Read per parent of every reply: a module constant is faster to reach than an enum member.
_SEED: Final = HostType.SEED


def parent_payload(view: StateView, peer_id: str) -> ParentPayload | None:
    """How a child reaches ``peer_id``; None if the peer (or its host) is gone."""
    if not view.has_peer(peer_id):
        return None
    peer = view.peer(peer_id)
    if not view.has_host(peer.host_id):
        return None
    info = view.host(peer.host_id).info
    return ParentPayload(
        peer_id=peer.id,
        host_id=peer.host_id,
        ip=info.ip,
        download_port=info.download_port,
        finished_piece_count=len(peer.finished_pieces),
        type="seed" if info.type.value == "seed" else "normal",
    )


def schedule_message(
    view: StateView, peer_id: str, decision: Decision, request_id: str | int | None = None
) -> Schedule:
    """The ``schedule`` message for one decision (``request_id`` None: a push).

    The view is read at once, in the turn of the decision, so every parent is
    there; should one be missing anyway it is left out, and a ``parents``
    decision left with none becomes ``wait`` with ``retry_after`` 0.
    """
    parents: list[ParentPayload] = []
    if decision.action is ScheduleAction.PARENTS:
        parents = [p for p in (parent_payload(view, pid) for pid in decision.parents) if p]
    return _schedule(peer_id, decision, parents, request_id)


def schedule_reply(scheduled: Scheduled, request_id: str | int | None) -> Schedule:
    """The ``schedule`` that answers a request, from the core's one-call answer."""
    parents = [
        ParentPayload(
            peer_id=parent.peer_id,
            host_id=parent.host_id,
            ip=parent.ip,
            download_port=parent.download_port,
            finished_piece_count=parent.finished_piece_count,
            type="seed" if parent.host_type is _SEED else "normal",
        )
        for parent in scheduled.parents
    ]
    event = scheduled.scheduled
    return _schedule(event.peer_id, event.decision, parents, request_id)


def _schedule(
    peer_id: str,
    decision: Decision,
    parents: list[ParentPayload],
    request_id: str | int | None,
) -> Schedule:
    """The one copy of a core :class:`~scheduler.core.Decision` into a ``schedule``."""
    action = decision.action
    if action is ScheduleAction.PARENTS and not parents:
        log.warning(
            "every parent vanished before the reply", extra={"fields": {"peer_id": peer_id}}
        )
        return Schedule(
            id=request_id,
            peer_id=peer_id,
            action=ScheduleAction.WAIT.value,
            retry_after=_GONE_RETRY_AFTER,
            message="the parents chosen are gone; ask again",
        )
    return Schedule(
        id=request_id,
        peer_id=peer_id,
        action=action.value,
        parents=parents,
        retry_after=decision.retry_after,
        message=decision.message,
    )


def fetch_task_message(event: SeedFetchRequested) -> FetchTask:
    """The ``fetch_task`` a seed host receives."""
    task = TaskPayload(
        id=event.task_id,
        url=event.url,
        piece_length=event.piece_length,
        content_length=event.content_length,
        total_piece_count=event.total_piece_count,
    )
    return FetchTask(task=task, peer_id=event.peer_id)


@final
@attrs.frozen(kw_only=True)
class Routed:
    """What :func:`route_unsolicited` did with one batch of events."""

    #: Pushes queued on a child's session, after coalescing.
    pushes: int = 0
    #: ``fetch_task`` messages queued on a seed's session.
    fetch_tasks: int = 0
    #: ``(message type, reason)`` -> how many were dropped: ``no_session`` or
    #: ``outbox_overflow``.
    dropped: dict[tuple[str, str], int] = attrs.field(factory=dict)


def unsolicited(view: StateView, events: Iterable[Event]) -> list[tuple[str, ServerMessage]]:
    """``(host id, message)`` for every push and seed fetch in ``events``, in order.

    Pushes are coalesced per child: only its last push of the batch is kept, at
    the place of its first (a later decision supersedes an earlier one).
    """
    latest: dict[str, PeerScheduled] = {}
    order: list[SeedFetchRequested | str] = []
    for event in events:
        if isinstance(event, PeerScheduled) and event.pushed:
            if event.peer_id not in latest:
                order.append(event.peer_id)
            latest[event.peer_id] = event
        elif isinstance(event, SeedFetchRequested):
            order.append(event)
    out: list[tuple[str, ServerMessage]] = []
    for item in order:
        if isinstance(item, SeedFetchRequested):
            out.append((item.seed_host_id, fetch_task_message(item)))
        else:
            push = latest[item]
            out.append((push.host_id, schedule_message(view, push.peer_id, push.decision)))
    return out


def route_unsolicited(view: StateView, hosts: HostRegistry, events: Iterable[Event]) -> Routed:
    """Queue each push and seed fetch of ``events`` on its host's session now."""
    pushes = fetch_tasks = 0
    dropped: dict[tuple[str, str], int] = {}
    for host_id, message in unsolicited(view, events):
        delivery = hosts.deliver(host_id, message)
        if delivery is Delivery.QUEUED:
            if isinstance(message, FetchTask):
                fetch_tasks += 1
            else:
                pushes += 1
            continue
        key = (message.tag, delivery.value)
        dropped[key] = dropped.get(key, 0) + 1
        log.info(
            "%s dropped",
            message.tag,
            extra={"fields": {"host_id": host_id, "reason": delivery.value}},
        )
    return Routed(pushes=pushes, fetch_tasks=fetch_tasks, dropped=dropped)
