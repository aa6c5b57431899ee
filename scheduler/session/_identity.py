"""Who a session proved to be, and which hosts that lets it announce.

The trio shell authenticates the handshake (a bearer token, or a client
certificate) and hands the result to the session rules as data: an
:class:`Identity`, or None when authentication is off. The rules here decide
what that identity may do; they read no token and no certificate.

* A named identity (a host token's subject, a certificate's CN) may announce
  only that hostname.
* A cluster-wide identity (a token with no subject) may announce any hostname;
  it is weaker, since every holder can speak for every host it did not see
  announced by someone else.
* Reconnecting to, taking over or superseding an existing host needs the same
  identity that announced it (see :func:`check_announce`).
* Only an identity with the seed scope (a token issued with ``--seed``, a client
  certificate with ``OU=seed``) may announce a seed host: seeds are first choice
  as parents and receive other hosts' ``fetch_task``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import final

import attrs

from ..core import Forbidden


@final
@attrs.frozen
class Identity:
    """An authenticated peer: ``name`` is the hostname it may announce (None: any)."""

    name: str | None
    #: How it was proven, for logs: ``"token"`` or ``"certificate"``.
    via: str = attrs.field(default="token", eq=False)
    #: Whether it may announce seed hosts (the same identity with or without it).
    seed: bool = attrs.field(default=False, eq=False)

    @property
    def cluster_wide(self) -> bool:
        return self.name is None

    def may_announce(self, hostname: str) -> bool:
        return self.name is None or self.name == hostname

    def describe(self) -> str:
        return "a cluster-wide token" if self.name is None else f"{self.via} {self.name!r}"


def check_announce(
    identity: Identity | None,
    hostname: str,
    affected: Iterable[str],
    identity_of: Callable[[str], Identity | None],
    *,
    seed: bool = False,
) -> None:
    """Raise :class:`Forbidden` unless ``identity`` may announce ``hostname`` (as a seed
    host if ``seed``).

    ``affected`` are the existing hosts the announce would reconnect to, take
    over or supersede; each must have been announced by the same identity.
    With authentication off (``identity`` None) everything is allowed.
    """
    if identity is None:
        return
    if not identity.may_announce(hostname):
        raise Forbidden(
            f"authenticated as {identity.describe()}; it may not announce hostname {hostname!r}"
        )
    if seed and not identity.seed:
        raise Forbidden(
            f"authenticated as {identity.describe()} without the seed scope; it may not "
            "announce a seed host (issue a seed token: `scheduler token issue --seed`)"
        )
    for host_id in affected:
        owner = identity_of(host_id)
        if owner != identity:
            raise Forbidden(
                f"host {host_id!r} was announced by another identity; "
                "only that identity may reconnect to, take over or supersede it"
            )
