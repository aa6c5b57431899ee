"""The job loop: runs the preheat jobs of :mod:`scheduler.jobs` against the live state.

A thin shell, like the GC loops: each turn reads ``trio.current_time()`` once,
reports every fetching host's peer as the state shows it (its pieces, whether it
succeeded, failed or left, whether its host is gone), sends the ``fetch_task``
messages the ledger hands out on the hosts' sessions (never blocking: a full
outbox or a missing session fails that host), and expires jobs. A turn runs
every :data:`JOB_TICK` seconds while a job runs, and at once after a submission;
otherwise the loop sleeps until the next job is due to be forgotten.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Iterator
from typing import Any, Final, final

import trio
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from ..core import HostType, PeerState, SchedulerState
from ..jobs import (
    Dispatch,
    HostCandidate,
    HostJobState,
    HostProgress,
    HostReport,
    Job,
    JobLedger,
    JobLimits,
    JobRefused,
    Sources,
    parse_job_request,
)
from ..protocol import FetchTask, TaskPayload, task_id_for_url
from ..session import Delivery, HostSessions
from ._logging import fields

log = logging.getLogger("scheduler.jobs")

#: Seconds between two turns of the loop while a job runs (progress is this fresh).
JOB_TICK: Final = 0.2


@final
class JobRunner:
    """The ledger, and the loop that feeds it the live state."""

    def __init__(
        self,
        state: SchedulerState,
        hosts: HostSessions,
        limits: JobLimits,
        *,
        max_piece_count: int,
        owner_elsewhere: Callable[[str], tuple[str, str] | None] = lambda _task_id: None,
    ) -> None:
        self._state = state
        #: In a cluster: the member (name, URL) that owns a task, if not this one.
        self._owner_elsewhere = owner_elsewhere
        self._hosts = hosts
        self.ledger = JobLedger(limits)
        self._max_piece_count = max_piece_count
        self._wake = trio.Event()
        #: ``fetch_task`` messages jobs queued on hosts' sessions.
        self.fetch_tasks = 0

    # --- what the admin API does ----------------------------------------------------------

    def submit(self, body: object) -> Job:
        """A new job from a request body; JobRequestError (400) or JobRefused (its status),
        and nothing changes, when it cannot be taken."""
        limits = self.ledger.limits
        request = parse_job_request(
            body, max_hosts=limits.max_hosts, max_piece_count=self._max_piece_count
        )
        view = self._state.view
        candidates = [
            HostCandidate(
                host.id, host.info.ip, host.info.hostname, host.info.type is HostType.SEED
            )
            for host in view.schedulable_hosts()
            if self._hosts.owner_of(host.id) is not None
        ]
        task_id = task_id_for_url(request.url)
        owner = self._owner_elsewhere(task_id)
        if owner is not None:
            # Its hosts would be told `moved`: the owner schedules the task's peers.
            raise JobRefused(
                409,
                f"the task of this url is scheduled by cluster member {owner[0]}: "
                "submit the preheat to that member's admin API",
            )
        now = trio.current_time()
        job = self.ledger.submit(secrets.token_hex(8), request, task_id, candidates, now)
        log.info(
            "job submitted",
            extra=fields(
                job_id=job.id, type=job.type, scope=request.scope.value, hosts=len(job.hosts)
            ),
        )
        self.turn(now)
        self._wake.set()
        return job

    # --- the loop ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Turn while jobs run; sleep otherwise. Runs until cancelled."""
        while True:
            self.turn(trio.current_time())
            running = any(True for _ in self.ledger.running())
            due = self.ledger.next_wakeup()
            if running:
                wake_at = trio.current_time() + JOB_TICK
            else:
                wake_at = trio.current_time() + 3600.0 if due is None else due
            with trio.move_on_at(wake_at):
                await self._wake.wait()
            self._wake = trio.Event()

    def turn(self, now: float) -> None:
        """One pass: reports, dispatches, deadlines."""
        ledger = self.ledger
        for job in list(ledger.running()):
            for host in list(job.hosts.values()):
                if host.state is HostJobState.FETCHING:
                    ledger.report(job.id, host.host_id, self._report(host), now)
        for dispatch in ledger.dispatches(now, self._sources):
            self._send(dispatch, now)
        for job in ledger.expire(now):
            log.warning("job deadline passed", extra=fields(job_id=job.id, reasons=job.reasons))

    def _report(self, host: HostProgress) -> HostReport:
        view = self._state.view
        host_gone = not view.is_schedulable(host.host_id) if view.has_host(host.host_id) else True
        if not view.has_peer(host.peer_id):
            return HostReport(host_gone=host_gone)
        peer = view.peer(host.peer_id)
        total = peer.total_piece_count
        if total < 0 and view.has_task(peer.task_id):
            total = view.task(peer.task_id).total_piece_count
        return HostReport(
            host_gone=host_gone,
            peer_state=peer.state.value,
            finished_pieces=len(peer.finished_pieces),
            total_pieces=total,
        )

    def _sources(self, task_id: str) -> Sources:
        view = self._state.view
        if not view.has_task(task_id):
            # Nobody registered the task: its whole back-to-source limit is free.
            return Sources(complete_copies=0, origin_room=self.ledger.limits.origin_fetches)
        task = view.task(task_id)
        copies = sum(1 for p in view.peers_of_task(task_id) if p.state is PeerState.SUCCEEDED)
        return Sources(
            complete_copies=copies,
            origin_room=max(0, task.back_to_source_limit - task.back_to_source_count),
        )

    def _send(self, dispatch: Dispatch, now: float) -> None:
        job, host = dispatch.job, dispatch.host
        request = job.request
        view = self._state.view
        held = any(
            p.state is PeerState.SUCCEEDED and p.task_id == job.task_id
            for p in view.peers_of_host(host.host_id)
        )
        if held:  # nothing to fetch: the host holds the task already
            self.ledger.host_succeeded(job.id, host.host_id, now)
            return
        task = TaskPayload(
            id=job.task_id,
            url=request.url,
            piece_length=request.piece_length,
            content_length=request.content_length,
            total_piece_count=request.total_piece_count,
        )
        delivery = self._hosts.deliver(host.host_id, FetchTask(task=task, peer_id=host.peer_id))
        if delivery is Delivery.QUEUED:
            self.fetch_tasks += 1
            return
        self.ledger.host_failed(job.id, host.host_id, delivery.value, now)


def job_json(
    job: Job, ledger: JobLedger, wall_time: Callable[[float], float], *, hosts: bool
) -> dict[str, Any]:
    """A job as ``GET /api/v1/jobs`` (``hosts`` False) and ``/api/v1/jobs/{id}`` show it."""
    request = job.request
    counts = {state: 0 for state in ("queued", "fetching", "succeeded", "failed")}
    for host in job.hosts.values():
        counts[host.state.value] += 1
    deadline = ledger.deadline_of(job)
    out: dict[str, Any] = {
        "id": job.id,
        "type": job.type,
        "state": job.state.value,
        "url": request.url,
        "task_id": job.task_id,
        "scope": request.scope.value,
        "count": request.count,
        "percentage": request.percentage,
        "ips": None if request.ips is None else list(request.ips),
        "piece_length": request.piece_length,
        "content_length": request.content_length,
        "created_at": wall_time(job.created_at),
        "started_at": None if job.started_at is None else wall_time(job.started_at),
        "finished_at": None if job.finished_at is None else wall_time(job.finished_at),
        "deadline_at": None if deadline is None else wall_time(deadline),
        "host_count": len(job.hosts),
        "hosts_by_state": counts,
        "reasons": list(job.reasons),
    }
    if hosts:
        out["hosts"] = [_host_json(host, wall_time) for host in job.hosts.values()]
    return out


def _host_json(host: HostProgress, wall_time: Callable[[float], float]) -> dict[str, Any]:
    return {
        "host_id": host.host_id,
        "ip": host.ip,
        "hostname": host.hostname,
        "seed": host.seed,
        "peer_id": host.peer_id,
        "state": host.state.value,
        "finished_pieces": host.finished_pieces,
        "total_pieces": host.total_pieces,
        "error": host.error,
        "dispatched_at": None if host.dispatched_at is None else wall_time(host.dispatched_at),
        "finished_at": None if host.finished_at is None else wall_time(host.finished_at),
    }


@final
class JobsCollector(Collector):
    """The jobs' metrics, read from the ledger's counters at scrape time."""

    def __init__(self, runner: JobRunner) -> None:
        self._runner = runner

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        ledger = self._runner.ledger
        jobs = GaugeMetricFamily(
            "scheduler_jobs", "Jobs kept, by type and state", labels=["type", "state"]
        )
        counts = ledger.counts()
        for state in ("pending", "running", "succeeded", "failed"):
            jobs.add_metric(["preheat", state], counts.get(("preheat", state), 0))
        yield jobs
        finished = CounterMetricFamily(
            "scheduler_jobs_finished", "Jobs finished, by type and state", labels=["type", "state"]
        )
        for state in ("succeeded", "failed"):
            finished.add_metric(["preheat", state], ledger.jobs_finished.get(state, 0))
        yield finished
        hosts = CounterMetricFamily(
            "scheduler_job_hosts", "Hosts of jobs done, by outcome", labels=["outcome"]
        )
        for outcome in ("succeeded", "failed"):
            hosts.add_metric([outcome], ledger.hosts_finished.get(outcome, 0))
        yield hosts
        failures = CounterMetricFamily(
            "scheduler_job_host_failures", "Hosts of jobs that failed, by reason", labels=["reason"]
        )
        for reason, count in sorted(ledger.host_failures.items()):
            failures.add_metric([reason], count)
        yield failures
        yield CounterMetricFamily(
            "scheduler_job_fetch_tasks",
            "fetch_task messages jobs queued on hosts' sessions",
            value=self._runner.fetch_tasks,
        )
