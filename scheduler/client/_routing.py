"""Where a client sends each task in a cluster: rendezvous over the members it trusts.

Sans-IO. `ClusterRoutes` keeps the members of the last refresh (``GET
/api/v1/schedulers``) less those this client lost a connection to since: a lost
member stays out until a refresh shows it *renewed* its lease or restarted (another
``lease_expires_at`` or ``boot_id`` than when it was lost), so a dead scheduler whose
lease has not run out yet is not dialled again and again. Each task belongs to the
member whose name wins the rendezvous over the task id (:mod:`scheduler.rendezvous`,
the rule the schedulers' ``moved`` replies follow), so losing a member remaps only
its tasks.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import final

from scheduler.rendezvous import rendezvous_owner

from ._membership import Membership, SchedulerMember


def _seen_as(member: SchedulerMember) -> tuple[str | None, str | None]:
    return member.lease_expires_at, member.boot_id


@final
class ClusterRoutes:
    """The members a client routes to, and the owner of each task among them."""

    def __init__(self, members: Iterable[SchedulerMember] = ()) -> None:
        self._membership = Membership(members)
        #: Name -> (lease_expires_at, boot_id) when this client lost it.
        self._lost: dict[str, tuple[str | None, str | None]] = {}
        #: Bumped on every change of the members routed to.
        self.generation = 0

    @property
    def members(self) -> Sequence[SchedulerMember]:
        return self._membership.members

    @property
    def names(self) -> list[str]:
        return self._membership.names

    def get(self, name: str) -> SchedulerMember | None:
        return self._membership.get(name)

    def refreshed(self, listed: Iterable[SchedulerMember]) -> tuple[set[str], set[str]]:
        """Take a refreshed list; returns the names (joined, left) of the routed members."""
        listed = list(listed)
        kept = []
        for member in listed:
            lost_as = self._lost.get(member.name)
            # Without a lease (a scheduler without --registry) there is no proof of
            # life to wait for: the next refresh brings it back.
            renewed = lost_as is None or _seen_as(member) != lost_as
            if not renewed and member.lease_expires_at is not None:
                continue  # not renewed since it was lost: still gone
            self._lost.pop(member.name, None)
            kept.append(member)
        still_listed = {m.name for m in listed}
        self._lost = {n: seen for n, seen in self._lost.items() if n in still_listed}
        joined, left = self._membership.replace(kept)
        if joined or left:
            self.generation += 1
        return joined, left

    def lost(self, name: str) -> bool:
        """The connection to ``name`` was lost: route around it now. False if not routed to."""
        member = self._membership.get(name)
        if member is None:
            return False
        self._lost[name] = _seen_as(member)
        self._membership.drop(name)
        self.generation += 1
        return True

    def owner(self, task_id: str) -> SchedulerMember | None:
        """The member ``task_id``'s messages go to (None: no member is known)."""
        name = rendezvous_owner(task_id, self._membership.names)
        return None if name is None else self._membership.get(name)
