"""The job ledger: which preheats exist, which hosts each asked, and how far each got.

Sans-IO, like the core: every call takes ``now``; the service's job loop reads
the live state, reports what it saw (:meth:`JobLedger.report`) and sends the
``fetch_task`` messages :meth:`JobLedger.dispatches` hands out.

Rules of this file:

* a job's lifecycle is the table :data:`JOB_TRANSITIONS`, a host's within a job
  :data:`HOST_TRANSITIONS`; :func:`transition` raises :class:`IllegalTransition`
  for a pair missing from them, before anything is assigned, so an illegal event
  changes nothing;
* at most ``max_running`` jobs run at once; later ones wait ``pending`` in
  submission order; at most ``max_jobs`` are unfinished (then a submission is
  refused); finished jobs are kept ``keep_finished`` seconds, and at most
  ``finished_kept`` of them;
* **the origin is spared.** Until some host holds the whole task (a peer of the
  task succeeded, in this job or before it), the jobs of that task have at most
  ``min(origin_fetches, hosts_in_flight, origin room)`` hosts fetching, where the
  origin room is what the task's back-to-source limit leaves (the scheduler's own
  rule); once a copy is in the swarm, up to ``hosts_in_flight`` fetch at once, from their
  parents. Seeds are asked first;
* a host asked to fetch that registers no peer within ``register_timeout`` fails
  with ``not_registered`` (it refused the task, or never got the message);
* a job finishes within ``deadline`` seconds: then every host not done yet
  fails with ``deadline``. It *succeeds* when every host it chose succeeded and
  *fails* otherwise, naming each failure.
"""

from __future__ import annotations

import enum
import ipaddress
import math
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Final, final

import attrs

from ..core import rendezvous_owner, transition
from ..rendezvous import rendezvous_weight
from ._request import PreheatRequest, Scope


class JobState(enum.Enum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class JobEvent(enum.Enum):
    START = "start"
    SUCCEED = "succeed"
    FAIL = "fail"


class HostJobState(enum.Enum):
    #: Chosen, not asked yet.
    QUEUED = "queued"
    #: Sent ``fetch_task``; fetching.
    FETCHING = "fetching"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class HostJobEvent(enum.Enum):
    DISPATCH = "dispatch"
    SUCCEED = "succeed"
    FAIL = "fail"


JOB_TRANSITIONS: Final = {
    JobState.PENDING: {JobEvent.START: JobState.RUNNING},
    JobState.RUNNING: {JobEvent.SUCCEED: JobState.SUCCEEDED, JobEvent.FAIL: JobState.FAILED},
    JobState.SUCCEEDED: {},
    JobState.FAILED: {},
}
HOST_TRANSITIONS: Final = {
    HostJobState.QUEUED: {
        HostJobEvent.DISPATCH: HostJobState.FETCHING,
        HostJobEvent.SUCCEED: HostJobState.SUCCEEDED,
        HostJobEvent.FAIL: HostJobState.FAILED,
    },
    HostJobState.FETCHING: {
        HostJobEvent.SUCCEED: HostJobState.SUCCEEDED,
        HostJobEvent.FAIL: HostJobState.FAILED,
    },
    HostJobState.SUCCEEDED: {},
    HostJobState.FAILED: {},
}
FINISHED: Final = frozenset({JobState.SUCCEEDED, JobState.FAILED})
_HOST_DONE: Final = frozenset({HostJobState.SUCCEEDED, HostJobState.FAILED})


class JobRefused(Exception):
    """A valid request the ledger cannot take now; ``status`` is the HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _positive(_instance: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{attribute.name} must be positive, got {value}")


@final
@attrs.frozen(kw_only=True)
class JobLimits:
    """The bounds of the job ledger (``[jobs]`` settings of ``scheduler serve``)."""

    #: Jobs running at once; more wait ``pending``.
    max_running: int = attrs.field(default=4, validator=_positive)
    #: Unfinished jobs (pending and running); one more is refused with 429.
    max_jobs: int = attrs.field(default=32, validator=_positive)
    #: Hosts one job may ask; a request choosing more is refused.
    max_hosts: int = attrs.field(default=1000, validator=_positive)
    #: Seconds a job may take; then its hosts not done fail (``deadline``).
    deadline: float = attrs.field(default=1800.0, validator=_positive)
    #: Seconds a finished job is kept for ``GET /api/v1/jobs``.
    keep_finished: float = attrs.field(default=3600.0, validator=_positive)
    #: Finished jobs kept at most (the oldest go first).
    finished_kept: int = attrs.field(default=100, validator=_positive)
    #: Hosts of one job fetching at once once the swarm holds a copy.
    hosts_in_flight: int = attrs.field(default=50, validator=_positive)
    #: Hosts of one job fetching at once while nobody holds the whole task.
    origin_fetches: int = attrs.field(default=1, validator=_positive)
    #: Seconds a host asked to fetch has to register its peer; then it fails.
    register_timeout: float = attrs.field(default=30.0, validator=_positive)


@final
@attrs.frozen
class HostCandidate:
    """A host a job may choose: a connected host, as the service saw it."""

    host_id: str
    ip: str
    hostname: str
    seed: bool


@final
@attrs.define(kw_only=True)
class HostProgress:
    """One chosen host of a job."""

    host_id: str
    ip: str
    hostname: str
    seed: bool
    #: The peer the host registers for the task (``fetch_task``'s ``peer_id``).
    peer_id: str
    state: HostJobState = HostJobState.QUEUED
    finished_pieces: int = 0
    #: The task's pieces as the peer knows them (-1: unknown).
    total_pieces: int = -1
    #: Why it failed (None unless ``failed``).
    error: str | None = None
    #: The live state showed its peer once (a peer gone after that failed).
    registered: bool = False
    dispatched_at: float | None = None
    finished_at: float | None = None


@final
@attrs.define(kw_only=True)
class Job:
    id: str
    type: str
    request: PreheatRequest
    task_id: str
    state: JobState = JobState.PENDING
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    #: Chosen hosts in the order they are asked (seeds first).
    hosts: dict[str, HostProgress] = attrs.field(factory=dict)
    #: Why it failed, one line per failed host (or for the job).
    reasons: list[str] = attrs.field(factory=list)

    def count(self, state: HostJobState) -> int:
        return sum(1 for host in self.hosts.values() if host.state is state)


@final
@attrs.frozen
class Sources:
    """What the live state says about a task's sources, for the origin rule."""

    #: Peers of the task holding all of it (succeeded).
    complete_copies: int
    #: Peers the task's back-to-source limit still lets fetch from the origin.
    origin_room: int


@final
@attrs.frozen
class Dispatch:
    """Send ``fetch_task`` for ``job``'s task to ``host.host_id`` as ``host.peer_id``."""

    job: Job
    host: HostProgress


@final
@attrs.frozen
class HostReport:
    """What the service saw of a fetching host in the live state."""

    #: The host is gone or disconnected (it cannot finish).
    host_gone: bool = False
    #: The peer's state value (None: not registered yet, or gone).
    peer_state: str | None = None
    finished_pieces: int = 0
    total_pieces: int = -1


def choose_hosts(
    request: PreheatRequest, task_id: str, candidates: Iterable[HostCandidate]
) -> list[HostCandidate]:
    """The hosts a preheat asks, seeds first, each group in the task's rendezvous order.

    ``single_seed`` is the task's seed (the rendezvous owner of the task among the
    seeds, as for a seed fetch); ``count`` and ``percentage`` take the first hosts of
    that order, so a repeated request picks the same hosts; ``ips`` keeps the hosts
    whose address is listed.
    """
    pool = [c for c in candidates if c.seed or request.scope is Scope.ALL_PEERS]
    if request.scope is Scope.SINGLE_SEED:
        owner = rendezvous_owner(task_id, [c.host_id for c in pool])
        return [c for c in pool if c.host_id == owner]
    pool.sort(key=lambda c: (not c.seed, -rendezvous_weight(task_id, c.host_id), c.host_id))
    if request.ips is not None:
        wanted = set(request.ips)
        return [c for c in pool if _normal_ip(c.ip) in wanted]
    if request.count is not None:
        return pool[: request.count]
    if request.percentage is not None:
        return pool[: math.ceil(len(pool) * request.percentage / 100)]
    return pool


def _normal_ip(ip: str) -> str:
    try:
        return str(ipaddress.ip_address(ip))
    except ValueError:
        return ip


def _peer_id(job_id: str, index: int) -> str:
    return f"preheat-{job_id}-{index}"


#: Peer states that end a host's part well, and badly (``scheduler.core.PeerState`` values).
PEER_SUCCEEDED: Final = "succeeded"
#: Why a host failed when its peer ended badly, by the peer's state.
PEER_ENDED_BADLY: Final = {"failed": "peer_failed", "leave": "peer_left"}


@final
class JobLedger:
    """Every job, newest last; the rules in the module doc."""

    def __init__(self, limits: JobLimits | None = None) -> None:
        self.limits = JobLimits() if limits is None else limits
        self._jobs: dict[str, Job] = {}
        #: Hosts that finished, by outcome; failures by reason (for the metrics).
        self.hosts_finished: Counter[str] = Counter()
        self.host_failures: Counter[str] = Counter()
        #: Jobs submitted and finished, by state (for the metrics).
        self.jobs_finished: Counter[str] = Counter()
        #: Jobs accepted since start (the console's summary: counters only).
        self.jobs_submitted = 0

    # --- reading -------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._jobs)

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def recent(self, limit: int) -> list[Job]:
        """The last ``limit`` jobs submitted, newest first."""
        return list(reversed(list(self._jobs.values())))[:limit]

    def running(self) -> Iterator[Job]:
        return (job for job in self._jobs.values() if job.state is JobState.RUNNING)

    def counts(self) -> Counter[tuple[str, str]]:
        """Jobs kept by ``(type, state)``."""
        return Counter((job.type, job.state.value) for job in self._jobs.values())

    def deadline_of(self, job: Job) -> float | None:
        return None if job.started_at is None else job.started_at + self.limits.deadline

    # --- changing ------------------------------------------------------------------------

    def submit(
        self,
        job_id: str,
        request: PreheatRequest,
        task_id: str,
        candidates: Iterable[HostCandidate],
        now: float,
    ) -> Job:
        """Create a job (``pending``); :class:`JobRefused` and nothing changes when it cannot."""
        if job_id in self._jobs:
            raise ValueError(f"job {job_id!r} exists")
        limits = self.limits
        unfinished = sum(1 for job in self._jobs.values() if job.state not in FINISHED)
        if unfinished >= limits.max_jobs:
            raise JobRefused(
                429, f"{unfinished} jobs are unfinished; max_jobs is {limits.max_jobs}"
            )
        chosen = choose_hosts(request, task_id, candidates)
        if not chosen:
            raise JobRefused(409, f"no connected host matches scope {request.scope.value}")
        if len(chosen) > limits.max_hosts:
            raise JobRefused(
                409,
                f"scope {request.scope.value} chooses {len(chosen)} hosts, more than "
                f"max_hosts ({limits.max_hosts}); give count or percentage",
            )
        job = Job(id=job_id, type="preheat", request=request, task_id=task_id, created_at=now)
        for index, host in enumerate(chosen):
            job.hosts[host.host_id] = HostProgress(
                host_id=host.host_id,
                ip=host.ip,
                hostname=host.hostname,
                seed=host.seed,
                peer_id=_peer_id(job_id, index),
                total_pieces=request.total_piece_count,
            )
        self._jobs[job_id] = job
        self.jobs_submitted += 1
        self._start_pending(now)
        return job

    def dispatches(self, now: float, sources: Callable[[str], Sources]) -> list[Dispatch]:
        """The hosts to send ``fetch_task`` now, each marked ``fetching``.

        ``sources`` is asked only about the tasks of jobs none of whose hosts has
        succeeded yet (the live state's answer costs a pass over the task's peers).
        """
        out: list[Dispatch] = []
        for job in list(self.running()):
            out.extend(self._dispatch_job(job, now, sources))
        return out

    def _dispatch_job(
        self, job: Job, now: float, sources: Callable[[str], Sources]
    ) -> list[Dispatch]:
        limits = self.limits
        fetching = job.count(HostJobState.FETCHING)
        room = limits.hosts_in_flight - fetching
        if not job.count(HostJobState.SUCCEEDED) and job.count(HostJobState.QUEUED):
            found = sources(job.task_id)
            if not found.complete_copies:
                # Every job preheating this task shares the origin's allowance.
                at_origin = sum(
                    other.count(HostJobState.FETCHING)
                    for other in self.running()
                    if other.task_id == job.task_id
                )
                room = min(limits.origin_fetches, limits.hosts_in_flight, found.origin_room)
                room -= at_origin
        queued = [host for host in job.hosts.values() if host.state is HostJobState.QUEUED]
        out: list[Dispatch] = []
        for host in queued[: max(room, 0)]:
            host.state = transition("job host", HOST_TRANSITIONS, host.state, HostJobEvent.DISPATCH)
            host.dispatched_at = now
            out.append(Dispatch(job, host))
        return out

    def report(self, job_id: str, host_id: str, report: HostReport, now: float) -> None:
        """What the live state says of a fetching host: progress, success or failure."""
        job = self._jobs[job_id]
        host = job.hosts[host_id]
        if host.state is not HostJobState.FETCHING:
            return
        host.finished_pieces = max(host.finished_pieces, report.finished_pieces)
        if report.total_pieces >= 0:
            host.total_pieces = report.total_pieces
        if report.peer_state == PEER_SUCCEEDED:
            self.host_succeeded(job_id, host_id, now)
        elif report.peer_state in PEER_ENDED_BADLY:
            self.host_failed(job_id, host_id, PEER_ENDED_BADLY[report.peer_state], now)
        elif report.host_gone:
            self.host_failed(job_id, host_id, "host_gone", now)
        elif report.peer_state is None and host.registered:
            self.host_failed(job_id, host_id, "peer_gone", now)
        elif report.peer_state is None and self._register_overdue(host, now):
            self.host_failed(job_id, host_id, "not_registered", now)
        else:
            host.registered = report.peer_state is not None or host.registered

    def _register_overdue(self, host: HostProgress, now: float) -> bool:
        asked = host.dispatched_at
        return asked is not None and now - asked >= self.limits.register_timeout

    def host_succeeded(self, job_id: str, host_id: str, now: float) -> None:
        job = self._jobs[job_id]
        host = job.hosts[host_id]
        self._end_host(host, HostJobEvent.SUCCEED, now)
        host.finished_pieces = max(host.finished_pieces, host.total_pieces)
        self._maybe_finish(job, now)

    def host_failed(self, job_id: str, host_id: str, reason: str, now: float) -> None:
        job = self._jobs[job_id]
        host = job.hosts[host_id]
        self._end_host(host, HostJobEvent.FAIL, now)
        host.error = reason
        self.host_failures[reason] += 1
        self._maybe_finish(job, now)

    def expire(self, now: float) -> list[Job]:
        """Fail the running jobs past their deadline, forget old finished ones; the
        jobs failed."""
        limits = self.limits
        failed: list[Job] = []
        for job in list(self.running()):
            deadline = self.deadline_of(job)
            if deadline is not None and now >= deadline:
                for host in job.hosts.values():
                    if host.state not in _HOST_DONE:
                        self._end_host(host, HostJobEvent.FAIL, now)
                        host.error = "deadline"
                        self.host_failures["deadline"] += 1
                self._maybe_finish(job, now)
                failed.append(job)
        finished = [job for job in self._jobs.values() if job.state in FINISHED]
        excess = len(finished) - limits.finished_kept
        for job in finished:
            assert job.finished_at is not None
            if excess > 0 or now - job.finished_at >= limits.keep_finished:
                del self._jobs[job.id]
                excess -= 1
        return failed

    def next_wakeup(self) -> float | None:
        """When :meth:`expire` has something to do next (None: nothing is timed)."""
        times: list[float] = []
        for job in self._jobs.values():
            if job.state is JobState.RUNNING:
                deadline = self.deadline_of(job)
                if deadline is not None:
                    times.append(deadline)
            elif job.finished_at is not None:
                times.append(job.finished_at + self.limits.keep_finished)
        return min(times, default=None)

    # --- internals -----------------------------------------------------------------------

    def _start_pending(self, now: float) -> None:
        free = self.limits.max_running - sum(1 for _ in self.running())
        pending = [job for job in self._jobs.values() if job.state is JobState.PENDING]
        for job in pending[: max(free, 0)]:
            self._job_event(job, JobEvent.START)
            job.started_at = now

    def _job_event(self, job: Job, event: JobEvent) -> None:
        job.state = transition("job", JOB_TRANSITIONS, job.state, event)

    def _end_host(self, host: HostProgress, event: HostJobEvent, now: float) -> None:
        """A host's part is over (``event`` succeed or fail)."""
        host.state = transition("job host", HOST_TRANSITIONS, host.state, event)
        host.finished_at = now
        self.hosts_finished[host.state.value] += 1

    def _maybe_finish(self, job: Job, now: float) -> None:
        hosts: Sequence[HostProgress] = list(job.hosts.values())
        if any(host.state not in _HOST_DONE for host in hosts):
            return
        failed = [host for host in hosts if host.state is HostJobState.FAILED]
        self._job_event(job, JobEvent.FAIL if failed else JobEvent.SUCCEED)
        job.finished_at = now
        job.reasons = [f"{host.host_id} ({host.ip}): {host.error}" for host in failed]
        self.jobs_finished[job.state.value] += 1
        self._start_pending(now)
