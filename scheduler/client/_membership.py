"""Which schedulers serve the cluster, as ``GET /api/v1/schedulers`` on any member says.

`parse_members` checks the answer's shape, `Membership` keeps the last list and drops
a member at once when the client loses it (the scheduler is gone until the next refresh
lists it again); both are sans-IO. `fetch_schedulers` is the blocking HTTP GET (run it in
a thread from trio); a peer's ``host`` token may read the list.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any, final

import attrs

from ._errors import SchedulerClientError
from ._hosts import HostsFetchError, _get


@final
class MembershipError(SchedulerClientError):
    """The schedulers list was not a JSON array of members."""


@final
@attrs.frozen
class SchedulerMember:
    """One active scheduler: its name, and the URLs peers and tools reach it by."""

    name: str
    #: The peers' WebSocket URL.
    url: str
    #: ISO 8601, by the registry database's clock (None for a process without a registry).
    lease_expires_at: str | None = None
    admin_url: str | None = None
    boot_id: str | None = None
    #: True while the scheduler that answered serves on the list it read before the
    #: registry went down for every member: the list is kept, and so are the sessions.
    stale: bool = False
    #: Seconds since that scheduler read the list from the registry (None: not said).
    roster_age: float | None = None


def _text(record: dict[str, Any], key: str, where: str, *, optional: bool) -> str | None:
    value = record.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value:
        raise MembershipError(f"{where}.{key}: expected a non-empty string, got {value!r}")
    return value


def _stale(record: dict[str, Any], where: str) -> tuple[bool, float | None]:
    stale, age = record.get("stale", False), record.get("roster_age")
    if not isinstance(stale, bool):
        raise MembershipError(f"{where}.stale: expected true or false, got {stale!r}")
    if age is not None and (isinstance(age, bool) or not isinstance(age, int | float)):
        raise MembershipError(f"{where}.roster_age: expected seconds, got {age!r}")
    return stale, None if age is None else float(age)


def parse_members(payload: object) -> list[SchedulerMember]:
    """The members of a ``/api/v1/schedulers`` answer (already JSON-decoded), by name."""
    if not isinstance(payload, list):
        raise MembershipError("expected a JSON array of schedulers")
    members = []
    for index, record in enumerate(payload):
        where = f"schedulers[{index}]"
        if not isinstance(record, dict):
            raise MembershipError(f"{where}: expected an object")
        stale, roster_age = _stale(record, where)
        members.append(
            SchedulerMember(
                name=str(_text(record, "name", where, optional=False)),
                url=str(_text(record, "url", where, optional=False)),
                lease_expires_at=_text(record, "lease_expires_at", where, optional=True),
                admin_url=_text(record, "admin_url", where, optional=True),
                boot_id=_text(record, "boot_id", where, optional=True),
                stale=stale,
                roster_age=roster_age,
            )
        )
    names = [m.name for m in members]
    if len(set(names)) != len(names):
        raise MembershipError(f"a scheduler name is listed twice: {sorted(names)}")
    return sorted(members, key=lambda m: m.name)


def fetch_schedulers(
    admin_url: str, *, timeout: float = 5.0, token: str | None = None, ca_file: str | None = None
) -> list[SchedulerMember]:
    """``GET {admin_url}/api/v1/schedulers``: the cluster's active members, by name.

    Raises `MembershipError` for an answer of the wrong shape, and
    `HostsFetchError` when the admin API cannot be reached or fails.
    """
    url, body, _ = _get(admin_url, "schedulers", {}, timeout, token=token, ca_file=ca_file)
    try:
        payload = json.loads(body)
    except ValueError as exc:
        raise HostsFetchError(f"GET {url}: the body is not JSON: {exc}") from exc
    return parse_members(payload)


@final
class Membership:
    """The schedulers a client knows of: replaced by each refresh, trimmed on losses."""

    def __init__(self, members: Iterable[SchedulerMember] = ()) -> None:
        self._members = {m.name: m for m in members}

    @property
    def members(self) -> Sequence[SchedulerMember]:
        return [self._members[name] for name in sorted(self._members)]

    @property
    def names(self) -> list[str]:
        return sorted(self._members)

    def get(self, name: str) -> SchedulerMember | None:
        return self._members.get(name)

    def replace(self, members: Iterable[SchedulerMember]) -> tuple[set[str], set[str]]:
        """Take a refreshed list; returns the names (joined, left)."""
        new = {m.name: m for m in members}
        joined, left = set(new) - set(self._members), set(self._members) - set(new)
        self._members = new
        return joined, left

    def drop(self, name: str) -> bool:
        """Forget a member whose connection was lost; False if it was not listed."""
        return self._members.pop(name, None) is not None
