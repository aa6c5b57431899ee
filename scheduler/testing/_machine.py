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

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from ..core import DEFAULT_SWEEP_INTERVAL, PolicySet
from ..policies import builtin_plugins
from ._simulation import Simulation
from ._strategies import (
    PEER_ACTIONS,
    Advance,
    Announce,
    Crash,
    EveryoneObeys,
    Hang,
    HostProfile,
    Leave,
    NextAnnounce,
    PeerStep,
    Pong,
    RegisterPeer,
    Swarm,
    Sweep,
    host_profiles,
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

    sim: Simulation

    @classmethod
    def make_plugins(cls) -> Sequence[object]:
        """Fresh plugin instances for one run. Default: the built-ins."""
        return builtin_plugins()

    def make_policies(self) -> PolicySet:
        return PolicySet.from_plugins(self.make_plugins(), config=self.config)

    @initialize(data=st.data())
    def start(self, data: st.DataObject) -> None:
        profiles: list[HostProfile] = data.draw(
            st.lists(host_profiles(), min_size=1, max_size=self.max_hosts), label="hosts"
        )
        self.sim = Simulation(
            self.make_policies(),
            profiles,
            sweep_interval=self.sweep_interval,
            unique_hostnames=self.unique_hostnames,
            seed=data.draw(st.integers(0, 2**32 - 1), label="seed"),
        )

    @rule(host=_HOST, jitter=st.floats(-1.0, 1.0))
    def announce(self, host: int, jitter: float) -> None:
        self.sim.apply(Announce(host, jitter))

    @rule()
    def next_announce(self) -> None:
        self.sim.apply(NextAnnounce())

    @rule(host=_HOST)
    def leave(self, host: int) -> None:
        self.sim.apply(Leave(host))

    @rule(host=_HOST)
    def crash(self, host: int) -> None:
        self.sim.apply(Crash(host))

    @rule(host=_HOST)
    def hang(self, host: int) -> None:
        self.sim.apply(Hang(host))

    @rule(host=_HOST)
    def pong(self, host: int) -> None:
        self.sim.apply(Pong(host))

    @rule(host=_HOST, task=task_infos())
    def register_peer(self, host: int, task: Any) -> None:
        self.sim.apply(RegisterPeer(host, task))

    @rule(peer=st.integers(0, 50), action=st.sampled_from(PEER_ACTIONS), cost=piece_costs)
    def peer_step(self, peer: int, action: str, cost: float | None) -> None:
        self.sim.apply(PeerStep(peer, action, cost))

    @rule(task=task_infos(), size=st.integers(1, 6), start=_HOST)
    def swarm(self, task: Any, size: int, start: int) -> None:
        """Several connected hosts join one task at once (the burst a decision must handle)."""
        self.sim.apply(Swarm(task, size, start))

    @rule(peer=st.integers(0, 50), cost=piece_costs)
    def obey(self, peer: int, cost: float | None) -> None:
        """A peer does what its last decision said (start, pieces, the origin, ask again)."""
        self.sim.apply(PeerStep(peer, "obey", cost))

    @rule(cost=piece_costs)
    def everyone_obeys(self, cost: float | None) -> None:
        self.sim.apply(EveryoneObeys(cost))

    @rule(seconds=st.sampled_from([0.5, 1.0, 5.0, 10.0, 60.0, 600.0, 3600.0]))
    def advance(self, seconds: float) -> None:
        self.sim.apply(Advance(seconds))

    @rule(seconds=st.floats(0.0, 120.0))
    def advance_a_little(self, seconds: float) -> None:
        self.sim.apply(Advance(seconds))

    @rule(kind=st.sampled_from(["host", "peer", "task"]))
    def sweep(self, kind: str) -> None:
        self.sim.apply(Sweep(kind))

    @invariant()
    def core_invariants_hold(self) -> None:
        if hasattr(self, "sim"):
            self.sim.check()
