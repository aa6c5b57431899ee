"""Each host's upload load, counted from its children's reports (``UploadLedger``).

* bytes and pieces served over a sliding 60 s window, in bounded memory;
* the current rate, a decayed average that a steady stream converges to;
* only a parent the scheduler handed to the reporting child is credited;
* the load goes with the host's record; the view and the admin API show it.
"""

from __future__ import annotations

import math
import random

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from scheduler.core import HostInfo, PeerScheduled, SchedulerState, TaskInfo, UploadLoad
from scheduler.core._uploads import RATE_TIME_CONSTANT, UPLOAD_BUCKETS, UploadLedger
from scheduler.policies import load_policies
from scheduler.protocol import MAX_UPLOAD_BANDWIDTH, HostPayload

MIB = 1024 * 1024
TASK = TaskInfo("t1", url="https://example.invalid/x", piece_length=4 * MIB, total_piece_count=64)


# --- the ledger -------------------------------------------------------------------------------


def test_a_host_that_served_nothing_has_no_load() -> None:
    assert UploadLedger().load("h", 10.0, in_flight=2) == UploadLoad(0.0, 0, 0, 2)


def test_the_window_keeps_the_last_sixty_seconds() -> None:
    ledger = UploadLedger()
    ledger.record("h", 100, 1, now=0.0)
    ledger.record("h", 200, 2, now=30.0)
    assert (ledger.load("h", 30.0).window_bytes, ledger.load("h", 30.0).window_pieces) == (300, 3)
    # At 61 s the first bucket ([0, 5) s) has left the window, the second has not.
    assert ledger.load("h", 61.0).window_bytes == 200
    assert ledger.load("h", 91.0).window_bytes == 0
    # A read drops nothing: an earlier time still sees what was in its window.
    assert ledger.load("h", 30.0).window_bytes == 300


def test_reports_in_one_bucket_add_up() -> None:
    ledger = UploadLedger()
    ledger.record("h", 100, 1, now=1.0)
    ledger.record("h", 50, 1, now=4.9)
    assert ledger.load("h", 5.0) == attrs.evolve(ledger.load("h", 5.0), window_bytes=150)
    assert ledger.load("h", 5.0).window_pieces == 2


def test_a_report_with_nothing_in_it_keeps_nothing() -> None:
    ledger = UploadLedger()
    ledger.record("h", 0, 0, now=1.0)
    assert len(ledger) == 0
    ledger.record("h", 7, 1, now=1.0)  # one piece counts
    assert ledger.load("h", 1.0).window_pieces == 1


def test_memory_is_bounded_per_host() -> None:
    ledger = UploadLedger()
    for second in range(10_000):
        ledger.record("h", 1, 1, now=float(second))
    assert len(ledger._hosts["h"].buckets) == UPLOAD_BUCKETS
    assert ledger.load("h", 9_999.0).window_pieces == 60  # twelve 5 s buckets of 5 reports


def test_the_rate_of_a_steady_stream_converges_to_it() -> None:
    ledger = UploadLedger()
    rate = 1e9  # bits/s: one 4 MiB piece every 4 MiB * 8 / 1e9 s
    step = 4 * MIB * 8 / rate
    for n in range(2_000):
        ledger.record("h", 4 * MIB, 1, now=n * step)
    assert ledger.load("h", 1_999 * step).rate == pytest.approx(rate, rel=0.05)


def test_the_rate_decays_when_nothing_is_reported() -> None:
    ledger = UploadLedger()
    ledger.record("h", 1000, 1, now=0.0)
    first = ledger.load("h", 0.0).rate
    assert first == 8 * 1000 / RATE_TIME_CONSTANT
    later = ledger.load("h", RATE_TIME_CONSTANT).rate
    assert later == pytest.approx(first / math.e)


def test_a_clock_that_steps_back_counts_in_the_newest_bucket() -> None:
    ledger = UploadLedger()
    ledger.record("h", 100, 1, now=20.0)
    ledger.record("h", 100, 1, now=10.0)
    assert ledger.load("h", 20.0).window_bytes == 200
    assert len(ledger._hosts["h"].buckets) == 1


def test_the_kept_window_sum_follows_reports_and_new_buckets() -> None:
    ledger = UploadLedger()
    assert ledger.window_bytes("h", 0.0) == 0
    ledger.record("h", 100, 1, now=0.0)
    assert ledger.window_bytes("h", 1.0) == 100
    ledger.record("h", 50, 1, now=2.0)  # the same bucket: the kept sum is stale
    assert ledger.window_bytes("h", 2.0) == 150
    assert ledger.window_bytes("h", 59.0) == 150
    assert ledger.window_bytes("h", 60.0) == 0  # a new bucket: summed again
    assert ledger.window_bytes("h", 30.0) == 150


def test_the_view_answers_the_window_bytes_of_a_host() -> None:
    state = new_state()
    parent, _ = parent_and_child(state)
    state.finish_pieces("c", [0, 1], 3.0, parent_id="p")
    assert state.view.upload_window_bytes(parent, 3.0) == 2 * 4 * MIB
    assert state.view.upload_window_bytes("no-such-host", 3.0) == 0


def test_forget_drops_the_host() -> None:
    ledger = UploadLedger()
    ledger.record("h", 100, 1, now=0.0)
    ledger.forget("h")
    ledger.forget("never")
    assert len(ledger) == 0
    assert ledger.load("h", 0.0) == UploadLoad()


@pytest.mark.parametrize("bad", [{"window": 0}, {"buckets": 0}, {"time_constant": 0}])
def test_the_ledger_refuses_empty_windows(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=r"^window, buckets and time_constant must be > 0$"):
        UploadLedger(**bad)  # type: ignore[arg-type]


def test_a_short_window_of_one_bucket_and_a_short_time_constant_work() -> None:
    ledger = UploadLedger(window=0.5, buckets=1, time_constant=0.5)
    ledger.record("h", 10, 1, now=0.0)
    assert ledger.load("h", 0.25) == UploadLoad(80 / 0.5 * math.exp(-0.5), 10, 1, 0)
    assert ledger.load("h", 0.5).window_bytes == 0


@given(
    st.lists(
        st.tuples(st.floats(0, 600, allow_nan=False), st.integers(0, 10**9), st.integers(1, 100)),
        max_size=50,
    ),
    st.floats(0, 100, allow_nan=False),
)
def test_the_window_never_counts_more_than_was_reported(
    reports: list[tuple[float, int, int]], after: float
) -> None:
    # The core asks at its ``now``, never before a report it has recorded.
    at = max((r[0] for r in reports), default=0.0) + after
    ledger = UploadLedger()
    for now, nbytes, pieces in sorted(reports):
        ledger.record("h", nbytes, pieces, now)
    load = ledger.load("h", at)
    assert ledger.window_bytes("h", at) == load.window_bytes
    assert ledger.window_bytes("h", at) == load.window_bytes  # kept: the same answer
    assert 0 <= load.window_bytes <= sum(r[1] for r in reports)
    assert 0 <= load.window_pieces <= sum(r[2] for r in reports)
    assert load.rate >= 0
    if "h" in ledger._hosts:
        assert len(ledger._hosts["h"].buckets) <= UPLOAD_BUCKETS
    recent = [r for r in reports if at - 55 <= r[0] <= at]
    assert load.window_bytes >= sum(r[1] for r in recent)


# --- the core: children's reports, the view, eviction -------------------------------------------


def new_state() -> SchedulerState:
    return SchedulerState(load_policies(entrypoints=False), now=0.0, rng=random.Random(1))


def parent_and_child(state: SchedulerState) -> tuple[str, str]:
    parent = HostInfo("parent", "10.0.0.1", upload_bandwidth=10**9)
    child = HostInfo("child", "10.0.0.2")
    for info in (parent, child):
        state.announce_host(info, 0.0, interval=3600)
    state.register_peer("p", parent.id, TASK, 1.0)
    state.back_to_source("p", 1.0)
    state.finish_pieces("p", range(8), 1.0)
    state.register_peer("c", child.id, TASK, 2.0)
    (decision,) = [e for e in state.schedule_peer("c", 2.0) if isinstance(e, PeerScheduled)]
    assert decision.decision.parents == ("p",)
    state.start_download("c", 2.0)
    return parent.id, child.id


def test_a_child_report_credits_the_parent_host() -> None:
    state = new_state()
    parent, _ = parent_and_child(state)
    assert state.view.upload_load(parent, 2.0) == UploadLoad(in_flight=1)
    state.finish_pieces("c", [0, 1, 2], 3.0, parent_id="p", cost=0.3)
    load = state.view.upload_load(parent, 3.0)
    assert (load.window_bytes, load.window_pieces, load.in_flight) == (3 * 4 * MIB, 3, 1)
    assert load.rate == 8 * 3 * 4 * MIB / RATE_TIME_CONSTANT
    # Pieces the child had already count nothing.
    state.finish_pieces("c", [2, 3], 4.0, parent_id="p")
    assert state.view.upload_load(parent, 4.0).window_pieces == 4


def test_the_host_own_pieces_and_unhanded_parents_count_nothing() -> None:
    state = new_state()
    parent, child = parent_and_child(state)
    state.finish_pieces("c", [0], 3.0)  # from the origin
    assert state.view.upload_load(parent, 3.0).window_pieces == 0
    assert state.view.upload_load(child, 3.0).window_pieces == 0
    # The parent's own origin pieces are not uploads of anybody.
    assert state.view.upload_load(parent, 3.0).window_bytes == 0


def test_the_load_goes_with_the_host_record() -> None:
    state = new_state()
    parent, _ = parent_and_child(state)
    state.finish_pieces("c", [0], 3.0, parent_id="p")
    assert state._pipeline.uploads.host_ids() == [parent]
    state.leave_host(parent, 4.0)
    assert len(state._pipeline.uploads) == 0
    assert state.invariant_violations() == []
    # A load kept for a host that is gone is named.
    state._pipeline.uploads.record("gone", 1, 1, 5.0)
    assert state.invariant_violations() == ["host gone: an upload load kept after its record went"]


# --- the wire: upload_bandwidth is optional and bounded ------------------------------------------

HOST = {"hostname": "h", "ip": "10.0.0.1", "port": 1, "download_port": 2}


def test_upload_bandwidth_is_optional_and_unknown_by_default() -> None:
    assert HostPayload(**HOST).upload_bandwidth == 0  # type: ignore[arg-type]
    assert HostPayload(**HOST, upload_bandwidth=MAX_UPLOAD_BANDWIDTH).upload_bandwidth == 10**13  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [-1, MAX_UPLOAD_BANDWIDTH + 1])
def test_upload_bandwidth_out_of_bounds_is_refused(bad: int) -> None:
    with pytest.raises(ValueError, match="upload_bandwidth: must be between 0"):
        HostPayload(**HOST, upload_bandwidth=bad)  # type: ignore[arg-type]
