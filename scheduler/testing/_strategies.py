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
        upload_bandwidth=st.sampled_from([0, 10**9, 10**10, 25 * 10**9]),
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


def host_fleets(min_hosts: int = 2, max_hosts: int = 6) -> st.SearchStrategy[list[HostProfile]]:
    """Host profiles of which, when there are two or more, the first two differ in hostname.

    A parent must be on another host than its child, and hosts that share a hostname
    supersede one another (the others may still collide: the supersede case).
    """
    fleets = st.lists(host_profiles(), min_size=min_hosts, max_size=max_hosts)
    return fleets.map(_two_hostnames)


def _two_hostnames(profiles: list[HostProfile]) -> list[HostProfile]:
    if len(profiles) < 2 or profiles[0].info.hostname != profiles[1].info.hostname:
        return profiles
    first, second, *rest = profiles
    other = HOSTNAMES[(HOSTNAMES.index(first.info.hostname) + 1) % len(HOSTNAMES)]
    renamed = attrs.evolve(second, info=attrs.evolve(second.info, hostname=other))
    return [first, renamed, *rest]


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
class DownloadSwarm(Step):
    """Up to ``size`` connected hosts (from the ``start``-th) download ``task`` together.

    Each registers a peer and obeys its first decision twice: the first peer goes to
    the origin and reports a piece, the later ones start on the parents they are
    handed and report a piece from one of them. ``cost`` is the seconds a piece took.
    """

    task: TaskInfo
    size: int
    start: int = 0
    cost: float | None = None


@final
@attrs.frozen
class ReportFailedParent(Step):
    """The ``peer``-th peer that holds parents reports its ``parent``-th one as failed.

    It asks again (``reschedule``) with ``failed_parents`` naming a parent it was handed,
    as a daemon does when a download from that parent breaks.
    """

    peer: int
    parent: int = 0


@final
@attrs.frozen
class Advance(Step):
    """Time passes in silence: no host announces (the GC still runs at each deadline)."""

    seconds: float


@final
@attrs.frozen
class Elapse(Step):
    """Time passes while every live host announces on its own schedule (with its jitter)."""

    seconds: float


@final
@attrs.frozen
class NextAnnounce(Step):
    """Advance to the earliest scheduled announce of any live host and deliver it."""


@final
@attrs.frozen
class Sweep(Step):
    kind: str


#: Seconds of an :class:`Elapse`: below the default TTLs, as time passes between events.
ELAPSE_SECONDS = (0.5, 1.0, 5.0, 10.0, 30.0, 60.0)
#: Seconds of an :class:`Advance` (silence): mostly short; now and then long enough
#: (600 s, 3,600 s) that hosts, peers and tasks expire.
SILENCE_SECONDS = (0.5, 1.0, 2.0, 5.0) * 4 + (600.0, 3600.0)

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
    """Any step over ``host_count`` hosts; the steps that build swarms of downloading peers
    (registers, obeys, downloads, failed-parent reports) and short waits come most often."""
    host = st.integers(0, max(0, host_count - 1))
    swarm_size = st.integers(1, 6)
    building = st.one_of(
        st.builds(RegisterPeer, host, task_infos()),
        st.builds(Swarm, task_infos(), swarm_size, host),
        st.builds(DownloadSwarm, task_infos(), swarm_size, host, piece_costs),
        st.builds(EveryoneObeys, piece_costs),
        st.builds(PeerStep, st.integers(0, 50), st.just("obey"), piece_costs),
        st.builds(ReportFailedParent, st.integers(0, 50), st.integers(0, 3)),
        st.builds(Elapse, st.sampled_from(ELAPSE_SECONDS)),
    )
    churn = st.one_of(
        st.builds(Announce, host, st.floats(-0.3, 0.3)),
        st.builds(Leave, host),
        st.builds(Crash, host),
        st.builds(Hang, host),
        st.builds(Pong, host),
        st.builds(PeerStep, st.integers(0, 50), st.sampled_from(PEER_ACTIONS), piece_costs),
        st.builds(Advance, st.sampled_from(SILENCE_SECONDS) | st.floats(0.0, 10.0)),
        st.just(NextAnnounce()),
        st.builds(Sweep, st.sampled_from(["host", "peer", "task"])),
    )
    # one_of draws its first branch as often as the second: building steps stay frequent.
    return st.one_of(building, churn)


def event_streams(
    *, min_hosts: int = 2, max_hosts: int = 6, max_steps: int = 60
) -> st.SearchStrategy[tuple[list[HostProfile], list[Step]]]:
    """A set of host profiles and an interleaved stream of steps over them.

    With two hosts or more, at least two hostnames differ (a parent must be on another
    host). The stream starts as daemons do: every host announces once, and then they
    download a first task together (:class:`DownloadSwarm`); from ``max_steps`` // 2 to
    ``max_steps`` steps follow.
    """
    return host_fleets(min_hosts, max_hosts).flatmap(
        lambda profiles: st.tuples(
            st.just(profiles),
            st.builds(
                _started,
                st.just(len(profiles)),
                st.builds(DownloadSwarm, task_infos(), st.just(len(profiles)), cost=piece_costs),
                st.lists(steps(len(profiles)), min_size=max_steps // 2, max_size=max_steps),
            ),
        )
    )


def _started(host_count: int, first: DownloadSwarm, stream: list[Step]) -> list[Step]:
    return [*(Announce(i) for i in range(host_count)), first, *stream]
