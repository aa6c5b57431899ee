"""Which scheduler of a cluster owns a task: the rule behind the ``moved`` reply.

A task belongs to the active member whose name wins the rendezvous over the task id
(:mod:`scheduler.rendezvous`), the same rule the clients route by. No I/O: the
service hands in its own view of the members.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from ..rendezvous import rendezvous_owner

#: ``task_id -> (name, url)`` of the scheduler that owns the task, or None when it is this one.
Placement = Callable[[str], "tuple[str, str] | None"]


def owner_elsewhere(task_id: str, me: str, members: Mapping[str, str]) -> tuple[str, str] | None:
    """The owner (name, WebSocket URL) of ``task_id`` if it is not ``me``, else None.

    ``members`` maps the active members' names to their URLs. A scheduler that does
    not see itself among them (its lease lapsed, the registry is unreachable, or it
    has not read the list yet) cannot tell who owns what, and accepts every task:
    serving on beats sending clients to a member it cannot vouch for.
    """
    if me not in members:
        return None
    owner = rendezvous_owner(task_id, members)
    if owner is None or owner == me:
        return None
    return owner, members[owner]
