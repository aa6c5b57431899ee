"""What a host may announce as its address and name: unambiguous ids, refused networks.

The host id is ``{ip}-{hostname}`` (``-seed`` added for a seed). With ``ip`` any text,
a token for ``worker-1`` announcing ip ``10.0.0.5-eu`` made the id of ``eu-worker-1``
at ``10.0.0.5`` and locked it out; a child was told to fetch from
``169.254.169.254:80``. Now ``ip`` is an IP literal in canonical form, ``hostname``
RFC 1123 labels not ending in ``-seed``, and the operator refuses networks.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from scheduler.core import ConfigError, HostType, SchedulerState, host_id_for
from scheduler.policies import load_policies
from scheduler.protocol import ErrorReply, HostAccepted, is_hostname
from scheduler.service import ServiceConfig
from scheduler.service._config import validate
from scheduler.session import (
    AUTO_REFUSED,
    HostSessions,
    Identity,
    SessionLimits,
    SessionProtocol,
    parse_networks,
    refused_network,
)
from scheduler.testing import ip_literals, rfc1123_hostnames

AUTO_NETWORKS = parse_networks(["auto"], loopback_listener=False)


def host_id_for_parts(hostname: str, ip: str, seed: bool) -> str:
    return host_id_for(ip, hostname, HostType.SEED if seed else HostType.NORMAL)


def session(
    networks: tuple[Any, ...] = AUTO_NETWORKS,
    identity: Identity | None = None,
    world: tuple[SchedulerState, HostSessions] | None = None,
) -> Any:
    if world is None:
        state = SchedulerState(load_policies(entrypoints=False), now=0.0)
        world = (state, HostSessions(state))
    state, hosts = world
    limits = SessionLimits(
        ping_interval=5.0,
        ping_timeout=4.0,
        announce_timeout=10.0,
        error_limit=100,
        error_window=10.0,
        refused_networks=networks,
    )
    return state, SessionProtocol(state, hosts, limits, opened_at=0.0, identity=identity)


def announce(hostname: str, ip: str, host_type: str = "normal") -> str:
    host = {"hostname": hostname, "ip": ip, "port": 8002, "download_port": 8001, "type": host_type}
    return orjson.dumps({"type": "announce_host", "id": 1, "host": host}).decode()


def reply_to(protocol: SessionProtocol, frame: str) -> Any:
    (reply,) = protocol.receive(frame, 1.0).replies
    return reply


def refused(reply: Any, code: str) -> str:
    """The message of an ``error`` reply with ``code`` (fails on any other reply)."""
    assert isinstance(reply, ErrorReply), reply
    assert reply.code == code, reply
    return reply.message


# --- the id is unambiguous -----------------------------------------------------------------------


def test_a_squatting_ip_is_refused_and_the_real_host_announces() -> None:
    state, squatter = session(identity=Identity("worker-1"))
    message = refused(reply_to(squatter, announce("worker-1", "10.0.0.5-eu")), "invalid_message")
    assert "canonical form" in message
    assert state.host_count() == 0
    _, real = session(identity=Identity("eu-worker-1"), world=(state, squatter.hosts))
    accepted = reply_to(real, announce("eu-worker-1", "10.0.0.5"))
    assert isinstance(accepted, HostAccepted)
    assert accepted.host_id == "10.0.0.5-eu-worker-1"


def test_a_dns_name_is_not_an_ip() -> None:
    _, protocol = session()
    refused(reply_to(protocol, announce("h1", "scheduler.example.com")), "invalid_message")


def test_no_hostname_ends_like_a_seed_id() -> None:
    # A normal host "x-seed" at an ip would have the id of the seed host "x" there.
    _, protocol = session()
    refused(reply_to(protocol, announce("x-seed", "10.0.0.9")), "invalid_message")
    assert not is_hostname("x-SEED")
    assert all(map(is_hostname, ("x-seeds", "seed-x", "seed")))


@given(
    st.tuples(rfc1123_hostnames(), ip_literals(), st.booleans()),
    st.tuples(rfc1123_hostnames(), ip_literals(), st.booleans()),
)
def test_two_hosts_with_the_same_id_are_the_same_host(
    first: tuple[str, str, bool], second: tuple[str, str, bool]
) -> None:
    if host_id_for_parts(*first) == host_id_for_parts(*second):
        assert first == second


def test_the_id_splits_back_into_its_parts() -> None:
    assert host_id_for_parts("eu-worker-1", "10.0.0.5", False) == "10.0.0.5-eu-worker-1"
    assert host_id_for_parts("node", "fe80::1", True) == "fe80::1-node-seed"


# --- refused networks ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ip", "network"),
    [
        ("169.254.169.254", "169.254.0.0/16"),
        ("127.0.0.1", "127.0.0.0/8"),
        ("0.0.0.0", "0.0.0.0/8"),
        ("224.0.0.1", "224.0.0.0/4"),
        ("255.255.255.255", "255.255.255.255/32"),
        ("::1", "::1/128"),
        ("::", "::/128"),
        ("fe80::1", "fe80::/10"),
        ("ff02::1", "ff00::/8"),
        (str(ipaddress.ip_address("::ffff:169.254.169.254")), "169.254.0.0/16"),
    ],
)
def test_auto_refuses_addresses_no_other_host_can_download_from(ip: str, network: str) -> None:
    state, protocol = session()
    message = refused(reply_to(protocol, announce("h1", ip)), "forbidden")
    assert f"ip {ip} is in {network}" in message
    assert state.host_count() == 0


@pytest.mark.parametrize("ip", ["10.0.0.1", "192.168.1.7", "2001:db8::5", "8.8.8.8"])
def test_ordinary_addresses_pass(ip: str) -> None:
    state, protocol = session()
    assert isinstance(reply_to(protocol, announce("h1", ip)), HostAccepted)
    assert state.host_count() == 1


def test_auto_refuses_nothing_when_the_listener_is_on_loopback() -> None:
    assert parse_networks(["auto"], loopback_listener=True) == ()
    _, protocol = session(parse_networks(["auto"], loopback_listener=True))
    assert isinstance(reply_to(protocol, announce("h1", "127.0.0.1")), HostAccepted)


def test_networks_of_the_operators_choice() -> None:
    networks = parse_networks(["10.9.0.0/16", "auto"], loopback_listener=True)
    assert networks == (ipaddress.ip_network("10.9.0.0/16"),)
    assert refused_network("10.9.3.4", networks) == ipaddress.ip_network("10.9.0.0/16")
    assert refused_network("10.8.3.4", networks) is None
    assert len(parse_networks(["auto", "auto"], loopback_listener=False)) == len(AUTO_REFUSED)
    with pytest.raises(ValueError, match=r"'10\.0\.0\.0/33' is neither 'auto' nor a network"):
        parse_networks(["10.0.0.0/33"], loopback_listener=False)


def test_the_setting_is_checked_at_start_up_and_auto_follows_the_bind() -> None:
    with pytest.raises(ConfigError, match=r"limits.refused_host_networks: 'ten' is neither"):
        validate(ServiceConfig(refused_host_networks=("ten",)))
    assert ServiceConfig().refused_networks() == ()  # the default binds 127.0.0.1
    public = ServiceConfig(bind="0.0.0.0", insecure=True)
    assert ipaddress.ip_network("169.254.0.0/16") in public.refused_networks()
    assert (
        ServiceConfig(bind="0.0.0.0", insecure=True, refused_host_networks=()).refused_networks()
        == ()
    )
