"""The job ledger and its request: sans-IO rules of a preheat, one by one."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.core import IllegalTransition, rendezvous_owner
from scheduler.jobs import (
    HOST_TRANSITIONS,
    JOB_TRANSITIONS,
    HostCandidate,
    HostJobEvent,
    HostJobState,
    HostReport,
    JobEvent,
    JobLedger,
    JobLimits,
    JobRefused,
    JobRequestError,
    JobState,
    PreheatRequest,
    Scope,
    Sources,
    choose_hosts,
    parse_job_request,
)
from scheduler.rendezvous import rendezvous_weight

URL = "https://origin.example/blob"
TASK = "task-1"
PLENTY = Sources(complete_copies=0, origin_room=200)


def parse(**fields: Any) -> PreheatRequest:
    body = {"type": "preheat", "url": URL, "scope": "all_peers", **fields}
    return parse_job_request(body, max_hosts=10, max_piece_count=1000)


def hosts(seeds: int, normal: int) -> list[HostCandidate]:
    out = [HostCandidate(f"s{i}", f"10.0.0.{i + 1}", f"seed{i}", True) for i in range(seeds)]
    out += [HostCandidate(f"n{i}", f"10.0.1.{i + 1}", f"node{i}", False) for i in range(normal)]
    return out


# --- the request ----------------------------------------------------------------------


def test_a_minimal_request_takes_the_defaults() -> None:
    request = parse()
    assert request == PreheatRequest(url=URL, scope=Scope.ALL_PEERS)
    assert request.piece_length == 4 * 1024 * 1024
    assert request.total_piece_count == -1


@pytest.mark.parametrize(
    ("content_length", "pieces"), [(0, 0), (1, 1), (10, 1), (11, 2), (20, 2), (21, 3)]
)
def test_the_piece_count_rounds_up(content_length: int, pieces: int) -> None:
    request = parse(piece_length=10, content_length=content_length)
    assert request.total_piece_count == pieces


def test_null_optional_fields_take_the_defaults() -> None:
    request = parse(piece_length=None, content_length=None, count=None)
    assert (request.piece_length, request.content_length, request.count) == (4 << 20, -1, None)


def test_every_field_is_read() -> None:
    request = parse(scope="all_seeds", ips=["10.0.0.1", "::1", "10.0.0.1"], piece_length=8)
    assert request.scope is Scope.ALL_SEEDS
    assert request.ips == ("10.0.0.1", "::1")
    assert request.piece_length == 8
    assert parse(count=10).count == 10
    assert parse(count=1).count == 1
    assert parse(percentage=100).percentage == 100.0
    assert parse(percentage=0.5).percentage == 0.5
    assert parse(content_length=-1).content_length == -1
    assert parse(piece_length=1, content_length=1000).total_piece_count == 1000
    assert parse(ips=["::ffff:1.2.3.4"]).ips == ("::ffff:102:304",)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "the body must be a JSON object"),
        ({"type": "preheat", "url": URL, "scope": "all_peers", "x": 1}, "unknown field 'x'"),
        ({"type": "sync", "url": URL, "scope": "all_peers"}, "type must be 'preheat'"),
        ({"url": URL, "scope": "all_peers"}, "type must be 'preheat', got None"),
        ({"type": "preheat", "scope": "all_peers"}, "url must be a non-empty string"),
        ({"type": "preheat", "url": "", "scope": "all_peers"}, "url must be a non-empty"),
        ({"type": "preheat", "url": 5, "scope": "all_peers"}, "url must be a non-empty"),
        ({"type": "preheat", "url": "a\nb", "scope": "all_peers"}, "control characters"),
        ({"type": "preheat", "url": "a" * 4097, "scope": "all_peers"}, "at most 4096"),
        ({"type": "preheat", "url": URL, "scope": "all"}, "scope must be one of"),
        ({"type": "preheat", "url": URL}, "scope must be one of"),
    ],
)
def test_a_bad_body_is_refused_with_its_reason(body: object, message: str) -> None:
    with pytest.raises(JobRequestError, match=message):
        parse_job_request(body, max_hosts=10, max_piece_count=1000)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "the body must be a JSON object"),
        ({"type": "sync"}, "type must be 'preheat', got 'sync'"),
        (
            {"type": "preheat", "url": URL, "scope": "all_peers", "zz": 1},
            "unknown field 'zz' (known: content_length, count, ips, percentage, piece_length, "
            "scope, type, url)",
        ),
        ({"type": "preheat", "url": ""}, "url must be a non-empty string"),
        (
            {"type": "preheat", "url": URL, "scope": "x"},
            "scope must be one of single_seed, all_seeds, all_peers, got 'x'",
        ),
        (
            {"type": "preheat", "url": URL, "scope": "all_peers", "ips": []},
            "ips must be a non-empty list of IP addresses",
        ),
    ],
)
def test_the_messages_say_exactly_what_is_wrong(body: object, message: str) -> None:
    with pytest.raises(JobRequestError) as refused:
        parse_job_request(body, max_hosts=10, max_piece_count=1000)
    assert str(refused.value) == message


def test_as_many_ips_as_max_hosts_are_taken() -> None:
    ips = [f"10.0.0.{i}" for i in range(10)]
    assert parse(ips=ips).ips == tuple(ips)


def test_the_longest_url_is_taken() -> None:
    assert parse(url="a" * 4096).url == "a" * 4096


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"count": 1, "percentage": 5}, "at most one of count, percentage and ips"),
        ({"ips": ["::1"], "count": 1}, "at most one of"),
        ({"scope": "single_seed", "count": 1}, "count goes with all_seeds or all_peers"),
        ({"scope": "single_seed", "ips": ["::1"]}, "ips goes with"),
        ({"count": 0}, r"count must be between 1 and max_hosts \(10\), got 0"),
        ({"count": 11}, "got 11"),
        ({"count": "3"}, "count must be an integer, got '3'"),
        ({"count": True}, "count must be an integer"),
        ({"count": 1.0}, "count must be an integer"),
        ({"percentage": 0}, r"percentage must be in \(0, 100\]"),
        ({"percentage": 100.5}, "percentage must be in"),
        ({"percentage": float("nan")}, "percentage must be in"),
        ({"percentage": "5"}, "percentage must be a number"),
        ({"percentage": False}, "percentage must be a number"),
        ({"ips": []}, "ips must be a non-empty list"),
        ({"ips": "10.0.0.1"}, "ips must be a non-empty list"),
        ({"ips": [f"10.0.0.{i}" for i in range(11)]}, r"at most max_hosts \(10\)"),
        ({"ips": [1]}, "IP addresses as strings, got 1"),
        ({"ips": ["host.example"]}, "'host.example' is not an IP address"),
        ({"piece_length": 0}, "piece_length must be at least 1, got 0"),
        ({"piece_length": "4"}, "piece_length must be an integer"),
        ({"content_length": -2}, r"content_length must be -1 \(unknown\) or more, got -2"),
        ({"piece_length": 1, "content_length": 1001}, r"1001 pieces, more than max_piece_count"),
    ],
)
def test_a_bad_field_is_refused_with_its_reason(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(JobRequestError, match=message):
        parse(**fields)


# --- choosing hosts -------------------------------------------------------------------


def test_single_seed_is_the_seed_a_seed_fetch_would_ask() -> None:
    candidates = hosts(3, 2)
    chosen = choose_hosts(parse(scope="single_seed"), TASK, candidates)
    owner = rendezvous_owner(TASK, ["s0", "s1", "s2"])
    assert [c.host_id for c in chosen] == [owner]


def test_the_order_is_the_tasks_rendezvous_order() -> None:
    candidates = hosts(6, 8)
    for task_id in (f"task-{i}" for i in range(10)):
        seed = choose_hosts(parse(scope="single_seed"), task_id, candidates)
        assert [c.host_id for c in seed] == [rendezvous_owner(task_id, [f"s{i}" for i in range(6)])]
        chosen = [c.host_id for c in choose_hosts(parse(), task_id, candidates)]
        weight = {c: rendezvous_weight(task_id, c) for c in chosen}
        assert chosen[:6] == sorted(chosen[:6], key=weight.__getitem__, reverse=True)
        assert chosen[6:] == sorted(chosen[6:], key=weight.__getitem__, reverse=True)


def test_a_whole_percentage_of_many_hosts_takes_them_all() -> None:
    assert len(choose_hosts(parse(percentage=100), TASK, hosts(0, 202))) == 202
    assert len(choose_hosts(parse(percentage=50), TASK, hosts(0, 202))) == 101


def test_single_seed_without_seeds_chooses_nobody() -> None:
    assert choose_hosts(parse(scope="single_seed"), TASK, hosts(0, 3)) == []


def test_all_seeds_takes_the_seeds_only() -> None:
    chosen = choose_hosts(parse(scope="all_seeds"), TASK, hosts(2, 3))
    assert sorted(c.host_id for c in chosen) == ["s0", "s1"]


def test_all_peers_asks_seeds_first() -> None:
    chosen = choose_hosts(parse(), TASK, hosts(2, 3))
    assert [c.seed for c in chosen] == [True, True, False, False, False]
    assert sorted(c.host_id for c in chosen) == ["n0", "n1", "n2", "s0", "s1"]


def test_count_and_percentage_take_the_first_of_the_same_order() -> None:
    candidates = hosts(1, 9)
    everyone = [c.host_id for c in choose_hosts(parse(), TASK, candidates)]
    by_count = [c.host_id for c in choose_hosts(parse(count=3), TASK, reversed(candidates))]
    assert by_count == everyone[:3]
    by_share = choose_hosts(parse(percentage=25), TASK, candidates)
    assert [c.host_id for c in by_share] == everyone[:3]  # 2.5 hosts: rounded up
    assert len(choose_hosts(parse(percentage=10), TASK, candidates)) == 1
    assert len(choose_hosts(parse(count=10), TASK, candidates)) == 10


def test_ips_keep_the_listed_addresses() -> None:
    candidates = [*hosts(1, 2), HostCandidate("v6", "0:0::1", "six", False)]
    chosen = choose_hosts(parse(ips=["10.0.1.2", "::1", "10.9.9.9"]), TASK, candidates)
    assert sorted(c.host_id for c in chosen) == ["n1", "v6"]
    odd = [HostCandidate("x", "not-an-ip", "x", False)]
    assert choose_hosts(parse(ips=["10.0.0.1"]), TASK, odd) == []


# --- the ledger -----------------------------------------------------------------------


def submit(ledger: JobLedger, job_id: str = "j1", now: float = 0.0, **fields: Any) -> Any:
    candidates = fields.pop("candidates", hosts(1, 3))
    return ledger.submit(job_id, parse(**fields), TASK, candidates, now)


def test_a_job_runs_at_once_and_names_a_peer_per_host() -> None:
    ledger = JobLedger()
    job = submit(ledger, now=5.0)
    assert job.state is JobState.RUNNING
    assert (job.created_at, job.started_at, ledger.deadline_of(job)) == (5.0, 5.0, 1805.0)
    assert [h.peer_id for h in job.hosts.values()] == [f"preheat-j1-{i}" for i in range(4)]
    assert all(h.state is HostJobState.QUEUED for h in job.hosts.values())
    assert ledger.get("j1") is job
    assert ledger.get("nope") is None
    assert len(ledger) == 1
    assert (job.request, job.task_id, job.type) == (parse(), TASK, "preheat")
    order = [c.host_id for c in choose_hosts(parse(), TASK, hosts(1, 3))]
    assert list(job.hosts) == order
    n0 = job.hosts["n0"]
    assert (n0.host_id, n0.ip, n0.hostname, n0.seed) == ("n0", "10.0.1.1", "node0", False)


def test_a_large_job_keeps_the_tasks_order() -> None:
    candidates = hosts(0, 12)
    job = JobLedger().submit("j", parse(), TASK, candidates, 0.0)
    assert list(job.hosts) == [c.host_id for c in choose_hosts(parse(), TASK, candidates)]


def test_sizes_come_from_the_request() -> None:
    job = submit(JobLedger(), piece_length=10, content_length=95)
    assert {h.total_pieces for h in job.hosts.values()} == {10}


@pytest.mark.parametrize(
    ("fields", "status", "message"),
    [
        ({"candidates": []}, 409, "no connected host matches scope all_peers"),
        ({"scope": "all_seeds", "candidates": hosts(0, 4)}, 409, "scope all_seeds"),
        ({"candidates": hosts(0, 4)}, 409, r"chooses 4 hosts, more than max_hosts \(3\)"),
    ],
)
def test_a_job_that_cannot_run_is_refused_and_changes_nothing(
    fields: dict[str, Any], status: int, message: str
) -> None:
    ledger = JobLedger(JobLimits(max_hosts=3))
    with pytest.raises(JobRefused, match=message) as refused:
        submit(ledger, **fields)
    assert refused.value.status == status
    assert len(ledger) == 0


def test_max_hosts_itself_is_allowed() -> None:
    ledger = JobLedger(JobLimits(max_hosts=4))
    assert len(submit(ledger, candidates=hosts(0, 4)).hosts) == 4


def test_a_job_id_is_taken_once() -> None:
    ledger = JobLedger()
    submit(ledger)
    with pytest.raises(ValueError, match="exists"):
        submit(ledger)


def test_jobs_past_max_running_wait_and_past_max_jobs_are_refused() -> None:
    ledger = JobLedger(JobLimits(max_running=1, max_jobs=2))
    first = submit(ledger, "a", candidates=hosts(0, 1))
    second = submit(ledger, "b", candidates=hosts(0, 1))
    assert (first.state, second.state) == (JobState.RUNNING, JobState.PENDING)
    sent = ledger.dispatches(1.0, plenty)
    assert [(d.job.id, d.host.host_id) for d in sent] == [("a", "n0")]  # b waits
    with pytest.raises(JobRefused, match="2 jobs are unfinished; max_jobs is 2") as refused:
        submit(ledger, "c")
    assert refused.value.status == 429
    assert [job.id for job in ledger.recent(10)] == ["b", "a"]
    assert [job.id for job in ledger.recent(1)] == ["b"]
    assert ledger.counts() == {("preheat", "running"): 1, ("preheat", "pending"): 1}
    ledger.host_succeeded("a", "n0", 2.0)
    assert first.state is JobState.SUCCEEDED
    assert (second.state, second.started_at) == (JobState.RUNNING, 2.0)
    submit(ledger, "c", candidates=hosts(0, 1))  # a finished job leaves room


def test_a_freed_slot_starts_exactly_one_pending_job_in_order() -> None:
    ledger = JobLedger(JobLimits(max_running=3))
    jobs = [submit(ledger, name, candidates=hosts(0, 1)) for name in "abcde"]
    assert [j.state for j in jobs] == [JobState.RUNNING] * 3 + [JobState.PENDING] * 2
    ledger.host_succeeded("a", "n0", 1.0)
    assert [j.state for j in jobs[3:]] == [JobState.RUNNING, JobState.PENDING]
    ledger.host_failed("b", "n0", "peer_failed", 2.0)
    ledger.host_failed("c", "n0", "peer_failed", 2.0)
    assert jobs[4].state is JobState.RUNNING
    assert ledger.host_failures == {"peer_failed": 2}
    ledger.host_succeeded("d", "n0", 3.0)
    ledger.host_succeeded("e", "n0", 3.0)
    assert ledger.jobs_finished == {"succeeded": 3, "failed": 2}


def plenty(_task: str) -> Sources:
    return PLENTY


def test_nobody_holds_the_task_so_one_host_fetches_at_a_time() -> None:
    ledger = JobLedger(JobLimits(origin_fetches=2, hosts_in_flight=3))
    job = submit(ledger, candidates=hosts(1, 5))
    other_task = Sources(complete_copies=5, origin_room=200)
    sent = ledger.dispatches(1.0, lambda task: PLENTY if task == TASK else other_task)
    assert [d.host.host_id for d in sent] == list(job.hosts)[:2]
    assert sent[0].host.seed  # seeds first
    assert all(d.job is job and d.host.dispatched_at == 1.0 for d in sent)
    assert all(d.host.state is HostJobState.FETCHING for d in sent)
    assert ledger.dispatches(2.0, plenty) == []  # two in flight already
    ledger.host_failed("j1", sent[0].host.host_id, "peer_failed", 3.0)
    assert len(ledger.dispatches(3.0, plenty)) == 1  # still nobody holds it
    ledger.host_succeeded("j1", sent[1].host.host_id, 4.0)
    # a copy is in the swarm: up to hosts_in_flight fetch from it
    assert len(ledger.dispatches(4.0, plenty)) == 2
    assert job.count(HostJobState.FETCHING) == 3
    assert ledger.dispatches(4.0, plenty) == []


def test_two_jobs_of_one_task_share_the_origin_allowance() -> None:
    ledger = JobLedger(JobLimits(origin_fetches=2))
    first = submit(ledger, "a", candidates=hosts(0, 1))
    second = submit(ledger, "b", candidates=hosts(0, 3))
    other = ledger.submit("c", parse(url="https://o/other"), "task-2", hosts(0, 3), 0.0)
    sent = ledger.dispatches(0.0, plenty)
    assert [(d.job.id, d.host.host_id) for d in sent].count(("a", "n0")) == 1
    assert first.count(HostJobState.FETCHING) + second.count(HostJobState.FETCHING) == 2
    assert other.count(HostJobState.FETCHING) == 2  # another task: its own allowance
    assert ledger.dispatches(1.0, plenty) == []


def test_the_origin_room_bounds_the_first_fetches() -> None:
    ledger = JobLedger(JobLimits(origin_fetches=5))
    submit(ledger, candidates=hosts(0, 4))
    assert ledger.dispatches(0.0, lambda _t: Sources(complete_copies=0, origin_room=0)) == []
    assert len(ledger.dispatches(0.0, lambda _t: Sources(complete_copies=0, origin_room=2))) == 2


def test_the_sources_are_asked_only_while_the_job_has_no_copy_and_hosts_wait() -> None:
    ledger = JobLedger(JobLimits(origin_fetches=1, hosts_in_flight=5))
    submit(ledger, candidates=hosts(0, 3))
    asked: list[str] = []

    def sources(task_id: str) -> Sources:
        asked.append(task_id)
        return PLENTY

    (first,) = ledger.dispatches(0.0, sources)
    assert asked == [TASK]
    ledger.host_succeeded("j1", first.host.host_id, 1.0)
    assert len(ledger.dispatches(1.0, sources)) == 2
    assert ledger.dispatches(2.0, sources) == []
    assert asked == [TASK]


def test_a_job_with_nothing_queued_asks_nothing() -> None:
    ledger = JobLedger(JobLimits(origin_fetches=2))
    submit(ledger, candidates=hosts(0, 2))
    ledger.dispatches(0.0, plenty)

    def never(_task: str) -> Sources:
        raise AssertionError("asked")

    assert ledger.dispatches(1.0, never) == []


def test_a_copy_elsewhere_in_the_swarm_lets_every_host_fetch() -> None:
    ledger = JobLedger(JobLimits(hosts_in_flight=3))
    submit(ledger, candidates=hosts(0, 4))
    sent = ledger.dispatches(0.0, lambda _t: Sources(complete_copies=1, origin_room=0))
    assert len(sent) == 3


def test_reports_move_progress_and_end_hosts() -> None:
    ledger = JobLedger(JobLimits(hosts_in_flight=4))
    job = submit(ledger, candidates=hosts(0, 4))
    ledger.dispatches(0.0, lambda _t: Sources(complete_copies=1, origin_room=0))
    a, b, c, d = job.hosts
    ledger.report("j1", a, HostReport(peer_state="running", total_pieces=0), 0.5)
    assert job.hosts[a].total_pieces == 0
    ledger.report("j1", a, HostReport(peer_state="running", finished_pieces=3, total_pieces=8), 1)
    assert (job.hosts[a].finished_pieces, job.hosts[a].total_pieces) == (3, 8)
    ledger.report("j1", a, HostReport(peer_state="running", finished_pieces=2), 2.0)
    assert (job.hosts[a].finished_pieces, job.hosts[a].total_pieces) == (3, 8)
    ledger.report("j1", a, HostReport(peer_state="succeeded", finished_pieces=7), 3.0)
    assert (job.hosts[a].state, job.hosts[a].finished_pieces) == (HostJobState.SUCCEEDED, 8)
    assert job.hosts[a].finished_at == 3.0
    ledger.report("j1", b, HostReport(peer_state="failed"), 4.0)
    ledger.report("j1", c, HostReport(host_gone=True, peer_state="running"), 4.0)
    assert job.state is JobState.RUNNING
    ledger.report("j1", d, HostReport(peer_state="leave", host_gone=True), 5.0)
    assert [job.hosts[h].error for h in (b, c, d)] == ["peer_failed", "host_gone", "peer_left"]
    assert [job.hosts[h].finished_at for h in (b, c, d)] == [4.0, 4.0, 5.0]
    assert (job.state, job.finished_at) == (JobState.FAILED, 5.0)
    ip = {h.host_id: h.ip for h in job.hosts.values()}
    assert job.reasons == [
        f"{b} ({ip[b]}): peer_failed",
        f"{c} ({ip[c]}): host_gone",
        f"{d} ({ip[d]}): peer_left",
    ]
    assert ledger.hosts_finished == {"succeeded": 1, "failed": 3}
    assert ledger.host_failures == {"peer_failed": 1, "host_gone": 1, "peer_left": 1}
    assert ledger.jobs_finished == {"failed": 1}
    ledger.report("j1", b, HostReport(peer_state="succeeded"), 6.0)  # over: ignored
    assert job.hosts[b].state is HostJobState.FAILED


def test_a_peer_not_registered_yet_keeps_its_host_fetching_but_one_gone_fails() -> None:
    ledger = JobLedger()
    job = submit(ledger, candidates=hosts(0, 1))
    ledger.dispatches(0.0, plenty)
    ledger.report("j1", "n0", HostReport(), 1.0)
    host = job.hosts["n0"]
    assert (host.state, host.total_pieces, host.registered) == (HostJobState.FETCHING, -1, False)
    ledger.report("j1", "n0", HostReport(peer_state="running"), 2.0)
    assert (host.state, host.registered) == (HostJobState.FETCHING, True)
    ledger.report("j1", "n0", HostReport(peer_state="back_to_source"), 2.5)
    assert (host.state, host.registered) == (HostJobState.FETCHING, True)
    ledger.report("j1", "n0", HostReport(), 3.0)
    assert (host.state, host.error, host.finished_at) == (HostJobState.FAILED, "peer_gone", 3.0)


def test_a_host_that_registers_no_peer_in_time_fails() -> None:
    ledger = JobLedger(JobLimits(register_timeout=30.0, origin_fetches=2))
    job = submit(ledger, candidates=hosts(0, 2))
    ledger.dispatches(10.0, plenty)
    ledger.report("j1", "n0", HostReport(), 39.9)
    ledger.report("j1", "n1", HostReport(peer_state="running"), 39.9)
    assert job.count(HostJobState.FETCHING) == 2
    ledger.report("j1", "n0", HostReport(), 40.0)
    ledger.report("j1", "n1", HostReport(peer_state="running"), 40.0)  # registered: waits
    n0 = job.hosts["n0"]
    assert (n0.state, n0.error, n0.finished_at) == (HostJobState.FAILED, "not_registered", 40.0)
    assert job.hosts["n1"].state is HostJobState.FETCHING


def test_a_job_whose_hosts_all_succeed_succeeds() -> None:
    ledger = JobLedger()
    job = submit(ledger, candidates=hosts(1, 1), content_length=0)
    for host_id in job.hosts:
        ledger.host_succeeded("j1", host_id, 2.0)
    assert {(h.finished_pieces, h.total_pieces) for h in job.hosts.values()} == {(0, 0)}
    assert (job.state, job.reasons, job.finished_at) == (JobState.SUCCEEDED, [], 2.0)
    assert ledger.jobs_finished == {"succeeded": 1}


def test_an_illegal_transition_raises_and_changes_nothing() -> None:
    ledger = JobLedger()
    job = submit(ledger, candidates=hosts(0, 2))
    ledger.host_succeeded("j1", "n0", 1.0)
    with pytest.raises(IllegalTransition, match=r"^job host: event fail is not allowed in state"):
        ledger.host_failed("j1", "n0", "late", 2.0)
    host = job.hosts["n0"]
    assert (host.state, host.error, host.finished_at) == (HostJobState.SUCCEEDED, None, 1.0)
    assert ledger.host_failures == {}
    assert ledger.hosts_finished == {"succeeded": 1}


def test_the_tables_hold_exactly_the_legal_moves() -> None:
    assert JOB_TRANSITIONS[JobState.PENDING] == {JobEvent.START: JobState.RUNNING}
    assert JOB_TRANSITIONS[JobState.RUNNING] == {
        JobEvent.SUCCEED: JobState.SUCCEEDED,
        JobEvent.FAIL: JobState.FAILED,
    }
    assert JOB_TRANSITIONS[JobState.SUCCEEDED] == JOB_TRANSITIONS[JobState.FAILED] == {}
    assert HOST_TRANSITIONS[HostJobState.QUEUED] == {
        HostJobEvent.DISPATCH: HostJobState.FETCHING,
        HostJobEvent.SUCCEED: HostJobState.SUCCEEDED,
        HostJobEvent.FAIL: HostJobState.FAILED,
    }
    assert HOST_TRANSITIONS[HostJobState.FETCHING] == {
        HostJobEvent.SUCCEED: HostJobState.SUCCEEDED,
        HostJobEvent.FAIL: HostJobState.FAILED,
    }
    assert HOST_TRANSITIONS[HostJobState.SUCCEEDED] == HOST_TRANSITIONS[HostJobState.FAILED] == {}


def test_the_deadline_fails_what_is_not_done() -> None:
    ledger = JobLedger(JobLimits(deadline=10.0))
    job = submit(ledger, candidates=hosts(0, 3))
    ledger.dispatches(0.0, plenty)
    first = next(iter(job.hosts))
    ledger.host_succeeded("j1", first, 1.0)
    assert ledger.expire(9.9) == []
    assert ledger.next_wakeup() == 10.0
    assert ledger.expire(10.0) == [job]
    assert job.state is JobState.FAILED
    done = {h.host_id: (h.state, h.error) for h in job.hosts.values()}
    assert all(state is not HostJobState.QUEUED for state, _ in done.values())
    assert done[first] == (HostJobState.SUCCEEDED, None)
    assert {h.finished_at for h in job.hosts.values() if h.error} == {10.0}
    assert sorted(error or "" for _, error in done.values()) == ["", "deadline", "deadline"]
    assert ledger.host_failures == {"deadline": 2}
    assert ledger.expire(11.0) == []
    assert ledger.next_wakeup() == 10.0 + ledger.limits.keep_finished


def test_finished_jobs_are_kept_for_a_while_and_at_most_so_many() -> None:
    ledger = JobLedger(JobLimits(keep_finished=100.0, finished_kept=2))
    assert ledger.next_wakeup() is None
    for i, job_id in enumerate("xyzabc"):
        submit(ledger, job_id, now=float(i - 3), candidates=hosts(0, 1))
        ledger.host_succeeded(job_id, "n0", float(i - 3))
    ledger.expire(50.0)
    assert [job.id for job in ledger.recent(10)] == ["c", "b"]  # the oldest went first
    ledger.expire(100.9)
    assert [job.id for job in ledger.recent(10)] == ["c", "b"]
    ledger.expire(101.0)
    assert [job.id for job in ledger.recent(10)] == ["c"]
    ledger.expire(102.0)
    assert len(ledger) == 0


def test_a_pending_job_has_no_deadline_yet() -> None:
    ledger = JobLedger(JobLimits(max_running=1, deadline=5.0))
    submit(ledger, "a", candidates=hosts(0, 1))
    pending = submit(ledger, "b", candidates=hosts(0, 1))
    assert ledger.deadline_of(pending) is None
    assert ledger.next_wakeup() == 5.0
    assert ledger.expire(6.0)[0].id == "a"
    assert pending.state is JobState.RUNNING


@pytest.mark.parametrize(
    "field", ["max_running", "max_jobs", "max_hosts", "deadline", "register_timeout"]
)
def test_limits_must_be_positive(field: str) -> None:
    with pytest.raises(ValueError, match=f"{field} must be positive"):
        JobLimits(**{field: 0})


@settings(max_examples=50, deadline=None)
@given(
    st.integers(1, 3),
    st.integers(1, 4),
    st.lists(st.tuples(st.integers(0, 9), st.sampled_from(["ok", "fail", "tick"])), max_size=40),
)
def test_in_flight_never_exceeds_the_rule(
    origin: int, in_flight: int, steps: list[tuple[int, str]]
) -> None:
    """Whatever hosts report, a job never has more fetching than the origin rule allows."""
    ledger = JobLedger(JobLimits(origin_fetches=origin, hosts_in_flight=in_flight))
    job = submit(ledger, candidates=hosts(2, 8))
    for now, (index, what) in enumerate(steps):
        ledger.dispatches(float(now), plenty)
        fetching = [h for h in job.hosts.values() if h.state is HostJobState.FETCHING]
        copies = job.count(HostJobState.SUCCEEDED)
        assert len(fetching) <= (in_flight if copies else min(origin, in_flight))
        if fetching and what != "tick":
            host = fetching[index % len(fetching)]
            if what == "ok":
                ledger.host_succeeded("j1", host.host_id, float(now))
            else:
                ledger.host_failed("j1", host.host_id, "peer_failed", float(now))
    done = job.count(HostJobState.SUCCEEDED) + job.count(HostJobState.FAILED)
    assert (job.state in (JobState.SUCCEEDED, JobState.FAILED)) == (done == len(job.hosts))
