"""Hypothesis strategies for hosts, announce schedules and event streams."""

from __future__ import annotations

from typing import Final, final

import attrs
from hypothesis import strategies as st

from ..core import HostInfo, HostType, TaskInfo

#: A small pool, so that generated hosts collide on hostname (the supersede case).
HOSTNAMES = ("alpha", "bravo", "charlie", "delta")


@final
@attrs.frozen
class HostProfile:
    """One simulated host: who it is and how its own clock behaves.

    The host *means* to announce every ``interval`` seconds, but its clock runs
    ``1 + drift`` times slower than the scheduler's, and each announce lands up
    to ``jitter`` × interval early or late.
    """

    info: HostInfo
    interval: float | None
    jitter: float = 0.0
    drift: float = 0.0

    def period(self) -> float | None:
        """Nominal seconds between announces on the scheduler's clock."""
        return None if self.interval is None else self.interval * (1.0 + self.drift)


def hostnames() -> st.SearchStrategy[str]:
    return st.sampled_from(HOSTNAMES)


def ips() -> st.SearchStrategy[str]:
    return st.integers(1, 6).map(lambda n: f"10.0.0.{n}")


_LABEL_CHARACTERS: Final = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def _labels() -> st.SearchStrategy[str]:
    edge = st.sampled_from(_LABEL_CHARACTERS)
    middle = st.text(_LABEL_CHARACTERS + "-", max_size=8)
    return st.one_of(edge, st.builds(lambda a, m, b: a + m + b, edge, middle, edge))


def rfc1123_hostnames() -> st.SearchStrategy[str]:
    """Any hostname ``announce_host`` accepts: RFC 1123 labels, not ending in ``-seed``."""
    names = st.lists(_labels(), min_size=1, max_size=4).map(".".join)
    return names.filter(lambda name: not name.lower().endswith("-seed"))


def ip_literals() -> st.SearchStrategy[str]:
    """Any ``ip`` ``announce_host`` accepts: an IPv4 or IPv6 address in canonical text."""
    return st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)).map(str)


def host_infos() -> st.SearchStrategy[HostInfo]:
    return st.builds(
        HostInfo,
        hostname=hostnames(),
        ip=ips(),
        port=st.just(8002),
        download_port=st.just(8001),
        type=st.sampled_from(HostType),
        idc=st.sampled_from(["", "idc-a", "idc-b"]),
        location=st.sampled_from(["", "cn|hz", "cn|sh|1"]),
        concurrent_upload_limit=st.integers(1, 100),
        stats=st.dictionaries(
            st.sampled_from(["cpu", "memory", "upload_bandwidth"]),
            st.floats(0.0, 1e9, allow_nan=False, allow_infinity=False),
            max_size=3,
        ),
    )


def intervals(allow_none: bool = True) -> st.SearchStrategy[float | None]:
    """Announce intervals in seconds: the Go daemon's 30 s, the Rust daemon's 300 s, and others."""
    values = st.sampled_from([1.0, 5.0, 30.0, 300.0]) | st.floats(0.5, 600.0)
    return (st.none() | values) if allow_none else values


def host_profiles(allow_no_interval: bool = True) -> st.SearchStrategy[HostProfile]:
    return st.builds(
        HostProfile,
        info=host_infos(),
        interval=intervals(allow_no_interval),
        jitter=st.sampled_from([0.0, 0.05]) | st.floats(0.0, 0.3),
        drift=st.sampled_from([0.0, 0.01]) | st.floats(-0.05, 0.05),
    )


def announce_schedules(profile: HostProfile, *, count: int = 20) -> st.SearchStrategy[list[float]]:
    """Announce times of one host on the scheduler's clock, with its jitter and drift."""
    period = profile.period() or 3600.0
    offsets = st.lists(st.floats(-profile.jitter, profile.jitter), min_size=count, max_size=count)
    return offsets.map(
        lambda jitters: [period * (i + 1) + period * j for i, j in enumerate(jitters)]
    )


def task_infos() -> st.SearchStrategy[TaskInfo]:
    return st.builds(
        TaskInfo,
        id=st.sampled_from(["task-a", "task-b", "task-c"]),
        url=st.just("https://example.invalid/blob"),
        piece_length=st.just(4 * 1024 * 1024),
        content_length=st.sampled_from([-1, 0, 100, 4 * 1024 * 1024, 40 * 1024 * 1024]),
        total_piece_count=st.sampled_from([-1, 1, 10]),
    )


# --- event streams --------------------------------------------------------------------


@attrs.frozen
class Step:
    """One step of a simulated event stream."""


@final
@attrs.frozen
class Announce(Step):
    host: int
    jitter: float = 0.0


@final
@attrs.frozen
class Leave(Step):
    host: int


@final
@attrs.frozen
class Crash(Step):
    """The host's session drops without a leave (the daemon died or the link broke)."""

    host: int


@final
@attrs.frozen
class Hang(Step):
    """The host stops talking but nothing tells the scheduler: no announce, no pong."""

    host: int


@final
@attrs.frozen
class Pong(Step):
    host: int


@final
@attrs.frozen
class RegisterPeer(Step):
    host: int
    task: TaskInfo


@final
@attrs.frozen
class PeerStep(Step):
    """``action`` on the ``peer``-th live peer (modulo the number of live peers).

    ``cost`` is the seconds the pieces of a ``pieces`` step took (None: not reported).
    """

    peer: int
    action: str
    cost: float | None = None


@final
@attrs.frozen
class Swarm(Step):
    """Up to ``size`` connected hosts (from the ``start``-th) register a peer for ``task``."""

    task: TaskInfo
    size: int
    start: int = 0


@final
@attrs.frozen
class EveryoneObeys(Step):
    """Every live peer, in id order, does what its last decision said (``obey``)."""

    cost: float | None = None


@final
@attrs.frozen
class Advance(Step):
    seconds: float


@final
@attrs.frozen
class NextAnnounce(Step):
    """Advance to the earliest scheduled announce of any live host and deliver it."""


@final
@attrs.frozen
class Sweep(Step):
    kind: str


PEER_ACTIONS = (
    "start",
    "back_to_source",
    "pieces",
    "finish",
    "fail",
    "leave",
    "schedule",
    "reschedule",
    "obey",
)

#: Piece costs: mostly alike, sometimes an outlier (so the bad-node rule fires).
piece_costs = st.none() | st.sampled_from([0.1, 0.12, 0.5, 20.0]) | st.floats(0.0, 5.0)


def steps(host_count: int) -> st.SearchStrategy[Step]:
    host = st.integers(0, max(0, host_count - 1))
    return st.one_of(
        st.builds(Announce, host, st.floats(-0.3, 0.3)),
        st.builds(Leave, host),
        st.builds(Crash, host),
        st.builds(Hang, host),
        st.builds(Pong, host),
        st.builds(RegisterPeer, host, task_infos()),
        st.builds(Swarm, task_infos(), st.integers(1, 6), host),
        st.builds(EveryoneObeys, piece_costs),
        st.builds(PeerStep, st.integers(0, 50), st.sampled_from(PEER_ACTIONS), piece_costs),
        st.builds(Advance, st.sampled_from([0.5, 1.0, 5.0, 60.0, 3600.0]) | st.floats(0.0, 900.0)),
        st.just(NextAnnounce()),
        st.builds(Sweep, st.sampled_from(["host", "peer", "task"])),
    )


def event_streams(
    *, min_hosts: int = 1, max_hosts: int = 6, max_steps: int = 60
) -> st.SearchStrategy[tuple[list[HostProfile], list[Step]]]:
    """A set of host profiles and an interleaved stream of steps over them."""
    return st.lists(host_profiles(), min_size=min_hosts, max_size=max_hosts).flatmap(
        lambda profiles: st.tuples(
            st.just(profiles), st.lists(steps(len(profiles)), max_size=max_steps)
        )
    )
