"""What a run simulates: the workload's parameters and the policy sets compared.

Every default is a documented assumption (docs/benchmarks.md), or the shipped
service's own setting: the scenario is never tuned towards a result.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final, final

import attrs

from ..config import LIVENESS
from ._bandwidth import MAX_LINK, BandwidthSpec

HOUR: Final = 3600.0


@final
@attrs.frozen(kw_only=True)
class Scenario:
    """The workload: hosts, tasks, churn and the download model (times in seconds)."""

    seed: int = 0
    hosts: int = 1000
    """Hosts present at any time, seeds included (dead hosts are replaced)."""
    seeds: int = 3
    tasks: int = 200
    pieces: int = 64
    announce_interval: float = 300.0
    crash_rate: float = 0.05
    """Crashes per host-hour: the process dies, the connection drops."""
    hang_rate: float = 0.02
    """Hangs per host-hour: the host freezes, the connection stays open, no signal at all."""
    leave_rate: float = 0.10
    """Graceful leaves per host-hour."""
    stop_rate: float = 0.0
    """Stops per host-hour: the daemon stops announcing and serving but keeps its session
    (and answers pings), so only the announce TTL catches it. Off by default (no rate is
    assumed)."""
    duration: float = 2 * HOUR
    zipf_exponent: float = 1.0
    """Task popularity: the k-th task is requested with weight 1 / k**s."""
    request_interval: float = 600.0
    """Mean seconds between two download requests of one host (Poisson)."""
    rejoin_delay: float = 60.0
    """Mean seconds before a departed host is replaced by a new one (new id)."""
    piece_time: float = 0.1
    """Seconds to fetch one piece from a parent (4 MiB at ~40 MiB/s), times the host's factor."""
    origin_piece_time: float = 0.2
    """Seconds to fetch one piece from the origin."""
    piece_timeout: float = 30.0
    """A piece from a dead (or stalled) parent fails after this long (the Rust client's default)."""
    report_batch: int = 16
    """Pieces per ``pieces_finished`` report."""
    stall_retry: float = 0.5
    """A child whose parents hold no piece it lacks looks again after this long."""
    ping_interval: float = LIVENESS["ping_interval"].default
    """The service's: ``scheduler serve``'s default ``liveness.ping_interval``."""
    ping_timeout: float = LIVENESS["ping_timeout"].default
    idcs: int = 4
    piece_length: int = 4 * 1024 * 1024
    """Bytes per piece (the tasks' ``piece_length``; with ``bandwidth``, a batch's size)."""
    bandwidth: BandwidthSpec | None = None
    """Links per host (``--bandwidth``); None: the fixed piece times above."""
    origin_bandwidth: float = 5e9
    """The origin's capacity in bits per second, shared by every download from it (with
    ``bandwidth`` only)."""

    def __attrs_post_init__(self) -> None:
        if self.hosts <= self.seeds or self.seeds < 0:
            raise ValueError("need more hosts than seeds, and seeds >= 0")
        if self.tasks < 1 or self.pieces < 1 or self.report_batch < 1:
            raise ValueError("tasks, pieces and report_batch must be >= 1")
        rates = (self.crash_rate, self.hang_rate, self.leave_rate, self.stop_rate)
        if min(rates) < 0:
            raise ValueError("churn rates must be >= 0")
        positive = (
            self.announce_interval,
            self.duration,
            self.request_interval,
            self.rejoin_delay,
            self.piece_time,
            self.origin_piece_time,
            self.piece_timeout,
            self.stall_retry,
            self.ping_interval,
            self.ping_timeout,
        )
        if min(positive) <= 0:
            raise ValueError("durations and intervals must be > 0")
        if self.piece_length < 1:
            raise ValueError("piece_length must be >= 1 byte")
        if not 0 < self.origin_bandwidth <= MAX_LINK:
            raise ValueError("origin_bandwidth must be > 0 and at most 10 Tbit/s")


@final
@attrs.frozen(kw_only=True)
class PolicySetSpec:
    """A policy set: the plugins the core runs, and the service's session rules around it."""

    name: str
    description: str
    enable: tuple[str, ...] = ()
    disable: tuple[str, ...] = ()
    config: Mapping[str, Mapping[str, Any]] = attrs.field(factory=dict)
    disconnect_signal: bool = True
    """The service sees a dropped connection (``disconnect_host``)."""
    pings: bool = True
    """The service pings every session; a hang is a disconnect after the ping timeout."""
    announce_with_interval: bool = True
    """Hosts send their interval; without it, the policies' fixed ``host_ttl`` applies."""


SIX_HOURS: Final = 6 * HOUR

#: The built-in policy sets, in the order the table prints them.
POLICY_SETS: Final[Mapping[str, PolicySetSpec]] = {
    spec.name: spec
    for spec in (
        PolicySetSpec(
            name="dragonfly-2.0",
            description="TTL-only host records: 6 h TTL, host GC every 6 h; no disconnect "
            "signal, no pings, no pushes (hosts announce no interval, so host_ttl applies)",
            enable=("dragonfly_compat",),
            config={"dragonfly_compat": {"host_ttl": SIX_HOURS, "host_sweep_interval": SIX_HOURS}},
            disconnect_signal=False,
            pings=False,
            announce_with_interval=False,
        ),
        PolicySetSpec(
            name="dragonfly-compat",
            description="TTL = 2 × interval, host GC every 5 min; no disconnect signal, "
            "no pings, no pushes (the dragonfly_compat plugin's defaults)",
            enable=("dragonfly_compat",),
            disconnect_signal=False,
            pings=False,
        ),
        PolicySetSpec(
            name="dragonfly-2.4",
            description="dragonfly-compat with Dragonfly v2.4's load-aware evaluator "
            "(the dragonfly_evaluator plugin: 60 % on free upload bandwidth, 3 parents)",
            enable=("dragonfly_compat", "dragonfly_evaluator"),
            disconnect_signal=False,
            pings=False,
        ),
        PolicySetSpec(
            name="default",
            description="built-ins: disconnect signal, pings, reconnect grace, proactive push",
        ),
        PolicySetSpec(
            name="phi-accrual",
            description="default + the phi_accrual plugin",
            enable=("phi_accrual",),
        ),
    )
}


def policy_set(name: str, plugins: Sequence[str], **options: Any) -> PolicySetSpec:
    """A policy set of one's own: the built-ins plus ``plugins`` (installed names or
    ``MODULE:OBJECT``), with the service's session rules (disconnects, pings, pushes)."""
    if not name or name in POLICY_SETS:
        raise ValueError(f"a policy set needs a new name, got {name!r}")
    if not plugins or not all(plugins):
        raise ValueError(f"policy set {name!r} names no plugin")
    description = options.pop("description", None) or "default + " + ", ".join(plugins)
    return PolicySetSpec(name=name, description=description, enable=tuple(plugins), **options)


def ping_detection_at(connected_at: float, hung_at: float, scenario: Scenario) -> float:
    """When the service ends a hung host's session: the first ping after the hang, + timeout.

    The heartbeat pings at ``connected_at + k × ping_interval`` (a pong comes back at
    once while the host is alive); the first ping that gets no pong times out.
    """
    interval = scenario.ping_interval
    ticks = (hung_at - connected_at) // interval + 1
    return connected_at + ticks * interval + scenario.ping_timeout
