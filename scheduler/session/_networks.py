"""Which addresses a host may announce: networks the operator refuses for hosts.

A host's ``ip`` is what other hosts are told to download from. A host that
announces ``169.254.169.254`` (a cloud's metadata service), a loopback or a
multicast address would make children fetch from there. So an operator lists
networks whose addresses no host may announce; ``"auto"`` stands for
:data:`AUTO_REFUSED` on a scheduler whose peers' listener is not on loopback, and
for nothing on one that is (a scheduler and its daemons on one machine announce
``127.0.0.1``).
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable
from typing import Final, TypeAlias

Network: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network

#: In ``limits.refused_host_networks``: the networks below, unless the peers' listener
#: binds a loopback address.
AUTO: Final = "auto"
#: What ``"auto"`` refuses: addresses no other host can download from.
AUTO_REFUSED: Final[tuple[str, ...]] = (
    "0.0.0.0/8",  # "this network", the unspecified address
    "127.0.0.0/8",  # loopback
    "169.254.0.0/16",  # link-local, cloud metadata services among them
    "224.0.0.0/4",  # multicast
    "255.255.255.255/32",  # broadcast
    "::/128",  # unspecified
    "::1/128",  # loopback
    "fe80::/10",  # link-local
    "ff00::/8",  # multicast
)


def parse_networks(entries: Iterable[str], *, loopback_listener: bool) -> tuple[Network, ...]:
    """The networks a setting's entries name; ValueError names a bad entry."""
    networks: list[Network] = []
    for entry in entries:
        if entry == AUTO:
            if not loopback_listener:
                networks.extend(ipaddress.ip_network(n) for n in AUTO_REFUSED)
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(
                f"{entry!r} is neither {AUTO!r} nor a network (e.g. 10.0.0.0/8, fe80::/10)"
            ) from None
    return tuple(dict.fromkeys(networks))


@functools.lru_cache(maxsize=65_536)
def refused_network(ip: str, networks: tuple[Network, ...]) -> Network | None:
    """The first of ``networks`` that holds ``ip`` (an IP literal), or None.

    An IPv4-mapped IPv6 address (``::ffff:127.0.0.1``) is judged as its IPv4 address
    too. Cached: a host announces the same address again and again.
    """
    if not networks:
        return None
    address = ipaddress.ip_address(ip)
    candidates: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = [address]
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        candidates.append(address.ipv4_mapped)
    for network in networks:
        for candidate in candidates:
            if candidate.version == network.version and candidate in network:
                return network
    return None
