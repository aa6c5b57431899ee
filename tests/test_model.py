"""The records and events: ids, upload slots, and the figures an eviction reports."""

from __future__ import annotations

import pytest

from scheduler.core import Eviction, Host, HostInfo, HostType, RecordKind, host_id_for


def host(limit: int, uploading: int) -> Host:
    info = HostInfo("alpha", "10.0.0.1", concurrent_upload_limit=limit)
    host = Host(info.id, info, None, 0.0, 0.0, 0.0)
    host.concurrent_upload_count = uploading
    return host


@pytest.mark.parametrize(
    ("limit", "uploading", "free"),
    [(50, 0, 50), (5, 2, 3), (5, 4, 1), (5, 5, 0), (5, 7, 0), (0, 0, 0)],
)
def test_free_upload_slots_are_the_limit_less_the_uploads_and_never_negative(
    limit: int, uploading: int, free: int
) -> None:
    assert host(limit, uploading).free_upload_slots() == free


def test_a_host_id_is_ip_dash_hostname_with_a_seed_suffix() -> None:
    assert host_id_for("10.0.0.1", "alpha") == "10.0.0.1-alpha"
    assert host_id_for("10.0.0.1", "alpha", HostType.NORMAL) == "10.0.0.1-alpha"
    assert host_id_for("10.0.0.1", "alpha", HostType.SEED) == "10.0.0.1-alpha-seed"
    assert HostInfo("alpha", "10.0.0.1", type=HostType.SEED).id == "10.0.0.1-alpha-seed"


def test_host_info_stats_are_a_read_only_copy() -> None:
    stats = {"load": 0.5}
    info = HostInfo("alpha", "10.0.0.1", stats=stats)
    stats["load"] = 0.9
    assert dict(info.stats) == {"load": 0.5}
    with pytest.raises(TypeError):
        info.stats["load"] = 1.0  # type: ignore[index]


def test_an_eviction_reports_its_detection_latency_and_lateness() -> None:
    late = Eviction(RecordKind.HOST, "h", "ttl", at=12.0, last_contact=4.0, deadline=10.0)
    assert (late.detection_latency, late.lateness) == (8.0, 2.0)
    # A contact stamped after the eviction (clock skew) is no negative latency.
    early = Eviction(RecordKind.HOST, "h", "admin", at=3.0, last_contact=4.0)
    assert (early.detection_latency, early.lateness) == (0.0, None)
