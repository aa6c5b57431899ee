"""The simulator's bandwidth model: links, max-min fair flows, and runs that use them.

Properties of :class:`Network` on generated flows: bytes are conserved, no link
ever carries more than its capacity, and every flow has a bottleneck (a full link
on which no flow is faster): the definition of max-min fairness.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.cli import main
from scheduler.simulate import (
    POLICY_SETS,
    ChurnSimulation,
    EventQueue,
    Scenario,
    SetResult,
    build_workload,
)
from scheduler.simulate._bandwidth import MIXED, UNIFORM, parse_bandwidth, parse_bits
from scheduler.simulate._cli import _piece_size
from scheduler.simulate._network import Flow, Link, Network, max_min_rates
from scheduler.simulate._transfers import NetworkTransfers

TOLERANCE = 1e-9


def check_rates(network: Network) -> None:
    """No link over capacity; each flow has a saturated link where it is the fastest."""
    links: dict[Link, list[Flow]] = {}
    for flow in network.flows:
        for link in flow.links:
            links.setdefault(link, []).append(flow)
    for link, flows in links.items():
        assert sum(f.rate for f in flows) <= link.capacity * (1 + TOLERANCE)
    for flow in network.flows:
        assert flow.rate > 0
        assert any(
            sum(f.rate for f in links[link]) >= link.capacity * (1 - 1e-6)
            and all(f.rate <= flow.rate * (1 + 1e-6) for f in links[link])
            for link in flow.links
        ), "a flow with no bottleneck could go faster"


def test_two_flows_share_an_uplink_equally_and_a_third_fills_the_rest() -> None:
    up = Link("up", 100.0)
    slow_down, fast_down = Link("slow", 20.0), Link("fast", 1000.0)
    other = Link("other", 1000.0)
    network = Network(EventQueue())
    a = network.start(up, slow_down, 1000.0, 0.0, lambda now: None)
    b = network.start(up, fast_down, 1000.0, 0.0, lambda now: None)
    assert (a.rate, b.rate) == (20.0, 80.0)  # a is held by its downlink; b takes the rest
    c = network.start(other, fast_down, 1000.0, 0.0, lambda now: None)
    assert (a.rate, b.rate, c.rate) == (20.0, 80.0, 920.0)
    check_rates(network)


def test_a_flow_finishes_when_its_bytes_are_through_and_frees_its_share() -> None:
    queue = EventQueue()
    up, down1, down2 = Link("up", 10.0), Link("d1", 100.0), Link("d2", 100.0)
    network = Network(queue)
    done: list[tuple[str, float]] = []
    network.start(up, down1, 10.0, 0.0, lambda now: done.append(("short", now)))
    long = network.start(up, down2, 30.0, 0.0, lambda now: done.append(("long", now)))
    while len(queue):
        at, action = queue.pop()
        action(at)
    # 5 bytes/s each until the short one is through at 2 s; then the long one gets 10.
    assert done == [("short", 2.0), ("long", 4.0)]
    assert long.transferred(4.0) == 30.0
    assert up.carried == pytest.approx(40.0)


def test_a_stopped_flow_keeps_what_it_got_through() -> None:
    network = Network(EventQueue())
    up, down = Link("up", 10.0), Link("down", 10.0)
    flow = network.start(up, down, 100.0, 0.0, lambda now: None)
    assert network.stop(flow, 3.0) == pytest.approx(30.0)
    assert flow.transferred(50.0) == pytest.approx(30.0)
    assert network.stop(flow, 4.0) == pytest.approx(30.0)  # twice: nothing more
    assert not up.flows
    assert not down.flows


def test_links_and_flows_refuse_nonsense() -> None:
    with pytest.raises(ValueError, match="capacity must be > 0"):
        Link("x", 0.0)
    with pytest.raises(ValueError, match="size > 0"):
        Network(EventQueue()).start(Link("a", 1.0), Link("b", 1.0), 0.0, 0.0, lambda now: None)


def test_max_min_of_nothing_is_nothing() -> None:
    assert max_min_rates([]) == {}


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(1.0, 1000.0), min_size=2, max_size=6),
    st.lists(
        st.tuples(
            st.integers(0, 5),
            st.integers(0, 5),
            st.floats(1.0, 5000.0),
            st.floats(0.0, 20.0),
            st.one_of(st.none(), st.floats(0.0, 30.0)),
        ),
        min_size=1,
        max_size=25,
    ),
)
def test_flows_conserve_bytes_stay_within_capacity_and_are_max_min_fair(
    capacities: list[float], specs: list[tuple[int, int, float, float, float | None]]
) -> None:
    queue = EventQueue()
    network = Network(queue)
    ups = [Link(f"u{i}", c) for i, c in enumerate(capacities)]
    downs = [Link(f"d{i}", c * 1.5) for i, c in enumerate(capacities)]
    finished: dict[int, float] = {}
    flows: dict[int, Flow] = {}
    stopped: dict[int, float] = {}

    def starter(n: int, up: int, down: int, size: float) -> Callable[[float], None]:
        def start(at: float) -> None:
            flows[n] = network.start(
                ups[up % len(ups)],
                downs[down % len(downs)],
                size,
                at,
                lambda now: finished.__setitem__(n, now),
            )
            check_rates(network)

        return start

    for n, (up, down, size, start_at, stop_after) in enumerate(specs):
        queue.schedule(start_at, starter(n, up, down, size))
        if stop_after is not None:

            def stop(at: float, n: int = n) -> None:
                if n in flows and n not in finished:
                    stopped[n] = network.stop(flows[n], at)
                    check_rates(network)

            queue.schedule(start_at + stop_after, stop)
    while len(queue):
        at, action = queue.pop()
        action(at)
        check_rates(network)
    assert not network.flows
    for n, (_, _, size, start_at, _) in enumerate(specs):
        assert (n in finished) != (n in stopped)
        through = size if n in finished else stopped[n]
        assert 0 <= through <= size * (1 + TOLERANCE)
        if n in finished:
            # No faster than its slower link alone would allow.
            flow = flows[n]
            fastest = min(flow.up.capacity, flow.down.capacity)
            assert finished[n] >= start_at + size / fastest - 1e-6
    # Every byte a link carried belongs to a flow through it.
    for link in ups + downs:
        expected = sum(
            size if n in finished else stopped[n]
            for n, (up, down, size, _, _) in enumerate(specs)
            if link in flows[n].links
        )
        assert link.carried == pytest.approx(expected, rel=1e-6, abs=1e-6)


# --- the spec ---------------------------------------------------------------------------------


def test_named_specs() -> None:
    assert parse_bandwidth("mixed") is MIXED
    assert parse_bandwidth(" uniform ") is UNIFORM
    assert (MIXED.uplink, MIXED.fast_uplink, MIXED.seed_uplink) == (1e9, 1e10, 2.5e10)


def test_an_exact_spec() -> None:
    spec = parse_bandwidth("uplink=500M,downlink=2.5Gbit/s,seed-uplink=25G")
    assert (spec.uplink, spec.downlink, spec.seed_uplink, spec.seed_downlink) == (
        5e8,
        2.5e9,
        2.5e10,
        2.5e9,
    )
    assert spec.links_of(7, 3, is_seed=False) == (5e8, 2.5e9)
    assert spec.links_of(7, 3, is_seed=True) == (2.5e10, 2.5e9)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("fast", "expected mixed, uniform"),
        ("uplink=1G", "both uplink and downlink"),
        ("uplink=1G,uplink=2G,downlink=1G", "given twice"),
        ("uplink=0,downlink=1G", "must be > 0"),
        ("uplink=1x,downlink=1G", "expected bits per second"),
        ("uplink=20T,downlink=1G", "at most 10 Tbit/s"),
    ],
)
def test_a_bad_spec_says_why(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_bandwidth(text)


def test_bits_and_piece_sizes() -> None:
    assert parse_bits("1k") == 1e3
    assert parse_bits("1.5 Gbps") == 1.5e9
    assert _piece_size("4MiB") == 4 * 2**20
    assert _piece_size("512 KiB") == 512 * 2**10
    with pytest.raises(argparse.ArgumentTypeError, match="1 byte to 1 GiB"):
        _piece_size("2GiB")
    with pytest.raises(argparse.ArgumentTypeError, match="expected bytes"):
        _piece_size("four")


def test_mixed_gives_about_one_host_in_five_the_fast_links() -> None:
    links = [MIXED.links_of(7, i, is_seed=False) for i in range(2000)]
    fast = sum(up == 1e10 for up, _ in links)
    assert 300 < fast < 500
    assert MIXED.links_of(7, 0, is_seed=True) == (2.5e10, 2.5e10)


# --- runs -------------------------------------------------------------------------------------

BANDWIDTH = Scenario(
    seed=7,
    hosts=40,
    seeds=2,
    tasks=6,
    pieces=16,
    duration=900.0,
    announce_interval=60.0,
    crash_rate=1.0,
    hang_rate=0.5,
    leave_rate=1.0,
    request_interval=60.0,
    bandwidth=MIXED,
    origin_bandwidth=2e9,
    piece_length=2**20,
)


def _run(name: str, scenario: Scenario = BANDWIDTH) -> tuple[ChurnSimulation, SetResult]:
    sim = ChurnSimulation(scenario, POLICY_SETS[name], build_workload(scenario))
    return sim, sim.run()


@pytest.mark.parametrize("name", ["default", "dragonfly-compat"])
def test_a_bandwidth_run_conserves_bytes_and_keeps_the_core_sound(name: str) -> None:
    sim, result = _run(name)
    assert isinstance(sim.transfers, NetworkTransfers)
    received = sum(p.pieces for p in sim.truth.peers.values()) * BANDWIDTH.piece_length
    uploaded = sum(sim.metrics.uploaded.values())
    assert result.origin_bytes > 0
    assert result.origin_bytes + uploaded == received
    assert result.uplink_imbalance is not None
    assert result.uplink_imbalance >= 1.0
    # Hosts announced their uplink.
    for host in sim.truth.hosts.values():
        assert host.info.upload_bandwidth in {1e9, 1e10, 2.5e10}
    # A 16 MiB download at 10 Gbit/s at best takes 13 ms.
    assert result.download_time_p50 is not None
    assert result.download_time_p50 >= 16 * 2**20 * 8 / 1e10
    assert not sim.transfers.network.flows or sim.queue.peek() is not None
    assert sim.state.invariant_violations() == []


def test_the_same_seed_gives_the_same_bandwidth_figures() -> None:
    assert _run("default")[1].figures() == _run("default")[1].figures()


def test_without_bandwidth_the_workload_and_figures_are_as_before() -> None:
    timed = attrs.evolve(BANDWIDTH, bandwidth=None)
    assert build_workload(timed) == build_workload(BANDWIDTH)
    assert _run("default", timed)[1].origin_bytes > 0


def test_the_command_takes_a_bandwidth_spec(tmp_path: Path) -> None:
    out = tmp_path / "rows.json"
    code = main(
        [
            "simulate",
            "--hosts", "30", "--seeds", "2", "--tasks", "4", "--pieces", "8",
            "--duration", "5m", "--policy", "default",
            "--bandwidth", "uplink=1G,downlink=1G,seed-uplink=10G",
            "--origin-bandwidth", "2G", "--piece-size", "1MiB",
            "--json", str(out),
        ]
    )  # fmt: skip
    assert code == 0
    (row,) = json.loads(out.read_text())
    assert {"origin_bytes", "uplink_imbalance", "download_time_p99", "success"} <= set(row)


def test_a_bad_bandwidth_spec_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["simulate", "--bandwidth", "fast"])
    assert info.value.code == 2
    assert "expected mixed, uniform" in capsys.readouterr().err
