"""A Hypothesis ``RuleBasedStateMachine`` that checks the core invariants under a policy set.

A plugin author subclasses :class:`SchedulerStateMachine`, says which plugins
to run, and gets every core invariant checked against their policy::

    from scheduler.policies import builtin_plugins
    from scheduler.testing import SchedulerStateMachine

    class MyPolicyMachine(SchedulerStateMachine):
        @classmethod
        def make_plugins(cls):
            return [*builtin_plugins(), MyPolicy()]

    TestMyPolicy = MyPolicyMachine.TestCase
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any, ClassVar

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from ..core import DEFAULT_SWEEP_INTERVAL, PolicySet
from ..policies import builtin_plugins
from ._coverage import RunStats, report
from ._simulation import Simulation
from ._strategies import (
    ELAPSE_SECONDS,
    PEER_ACTIONS,
    SILENCE_SECONDS,
    Advance,
    Announce,
    Crash,
    DownloadSwarm,
    Elapse,
    EveryoneObeys,
    Hang,
    HostProfile,
    Leave,
    NextAnnounce,
    PeerStep,
    Pong,
    RegisterPeer,
    ReportFailedParent,
    Swarm,
    Sweep,
    host_fleets,
    piece_costs,
    task_infos,
)

_HOST = st.integers(0, 63)


class SchedulerStateMachine(RuleBasedStateMachine):
    """Drives the core with interleaved hosts; every step is checked by :class:`Simulation`.

    Override :meth:`make_plugins` (and optionally :attr:`config`,
    :attr:`unique_hostnames`, :attr:`sweep_interval`) in a subclass.
    """

    #: Plugin configuration sections, as the ``scheduler_configure`` hook receives them.
    config: ClassVar[Mapping[str, Mapping[str, Any]]] = {}
    #: Check "at most one live host per hostname" (needs a supersede policy).
    unique_hostnames: ClassVar[bool] = True
    sweep_interval: ClassVar[float] = DEFAULT_SWEEP_INTERVAL
    #: How many simulated hosts a run may have (each with its own interval, jitter, drift).
    max_hosts: ClassVar[int] = 6
    #: ``(plugin, hook)`` pairs whose errors the test expects. Any other error a plugin
    #: raises in a hook (or malformed answer it gives), which the core contains and logs,
    #: fails the step that caused it, naming the plugin, the hook and the exception.
    expected_plugin_errors: ClassVar[Collection[tuple[str, str]]] = frozenset()

    sim: Simulation

    @classmethod
    def make_plugins(cls) -> Sequence[object]:
        """Fresh plugin instances for one run. Default: the built-ins."""
        return builtin_plugins()

    def make_policies(self) -> PolicySet:
        return PolicySet.from_plugins(self.make_plugins(), config=self.config)

    @initialize(data=st.data())
    def start(self, data: st.DataObject) -> None:
        """Draw the hosts (at least two hostnames, when ``max_hosts`` allows); each
        announces once, as daemons do when they start, and they download a first task
        together, so that every run has a swarm to schedule and to break."""
        profiles: list[HostProfile] = data.draw(
            host_fleets(min(2, self.max_hosts), self.max_hosts), label="hosts"
        )
        self.sim = Simulation(
            self.make_policies(),
            profiles,
            sweep_interval=self.sweep_interval,
            unique_hostnames=self.unique_hostnames,
            seed=data.draw(st.integers(0, 2**32 - 1), label="seed"),
            expected_plugin_errors=self.expected_plugin_errors,
        )
        for index in range(len(profiles)):
            self.sim.apply(Announce(index))
        task = data.draw(task_infos(), label="first task")
        cost = data.draw(piece_costs, label="first piece cost")
        self.sim.apply(DownloadSwarm(task, len(profiles), 0, cost))

    # --- hosts ---------------------------------------------------------------------------

    @rule(host=_HOST, jitter=st.floats(-1.0, 1.0))
    def announce(self, host: int, jitter: float) -> None:
        self.sim.apply(Announce(host, jitter))

    @rule()
    def next_announce(self) -> None:
        self.sim.apply(NextAnnounce())

    @rule(host=_HOST, how=st.sampled_from([Leave, Crash, Hang]))
    def host_goes_away(self, host: int, how: type[Leave | Crash | Hang]) -> None:
        """A host leaves, its session drops (crash), or it hangs; one rule, so that hosts
        go away about as often as they come back (``announce``)."""
        self.sim.apply(how(host))

    @rule(host=_HOST)
    def pong(self, host: int) -> None:
        self.sim.apply(Pong(host))

    # --- swarms: what most steps do --------------------------------------------------------

    @rule(host=_HOST, task=task_infos())
    def register_peer(self, host: int, task: Any) -> None:
        self.sim.apply(RegisterPeer(host, task))

    @rule(task=task_infos(), size=st.integers(1, 6), start=_HOST)
    def swarm(self, task: Any, size: int, start: int) -> None:
        """Several connected hosts join one task at once (the burst a decision must handle)."""
        self.sim.apply(Swarm(task, size, start))

    @rule(task=task_infos(), size=st.integers(2, 6), start=_HOST, cost=piece_costs)
    def download_swarm(self, task: Any, size: int, start: int, cost: float | None) -> None:
        """A peer goes to the origin and reports a piece; the others start on the parents
        they are handed and report pieces from them."""
        self.sim.apply(DownloadSwarm(task, size, start, cost))

    @rule(peer=st.integers(0, 50), cost=piece_costs)
    def obey(self, peer: int, cost: float | None) -> None:
        """A peer does what its last decision said (start, pieces, the origin, ask again)."""
        self.sim.apply(PeerStep(peer, "obey", cost))

    @rule(cost=piece_costs)
    def everyone_obeys(self, cost: float | None) -> None:
        self.sim.apply(EveryoneObeys(cost))

    @rule(peer=st.integers(0, 50), parent=st.integers(0, 3))
    def report_failed_parent(self, peer: int, parent: int) -> None:
        """A child asks again, naming a parent it was handed as failed."""
        self.sim.apply(ReportFailedParent(peer, parent))

    @rule(peer=st.integers(0, 50), action=st.sampled_from(PEER_ACTIONS), cost=piece_costs)
    def peer_step(self, peer: int, action: str, cost: float | None) -> None:
        self.sim.apply(PeerStep(peer, action, cost))

    # --- time ------------------------------------------------------------------------------

    @rule(seconds=st.sampled_from(ELAPSE_SECONDS) | st.floats(0.0, 60.0))
    def elapse(self, seconds: float) -> None:
        """Time passes while the live hosts announce on their own schedules."""
        self.sim.apply(Elapse(seconds))

    @rule(seconds=st.sampled_from(SILENCE_SECONDS))
    def advance(self, seconds: float) -> None:
        """Time passes in silence: mostly briefly, now and then past every TTL."""
        self.sim.apply(Advance(seconds))

    @rule(kind=st.sampled_from(["host", "peer", "task"]))
    def sweep(self, kind: str) -> None:
        self.sim.apply(Sweep(kind))

    @invariant()
    def core_invariants_hold(self) -> None:
        if hasattr(self, "sim"):
            self.sim.check()

    def teardown(self) -> None:
        """Report what the run reached (``--hypothesis-show-statistics`` prints it)."""
        if hasattr(self, "sim"):
            report(RunStats.of(self.sim))
