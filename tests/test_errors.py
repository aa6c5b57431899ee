"""The core's typed errors carry what a caller needs to report them."""

from __future__ import annotations

from scheduler.core import ConfigError, IllegalTransition, NotFound, SchedulerError


def test_not_found_names_the_kind_and_the_id() -> None:
    error = NotFound("peer", "p-1")
    assert (error.kind, error.record_id) == ("peer", "p-1")
    assert str(error) == "peer 'p-1' not found"
    assert isinstance(error, SchedulerError)
    assert isinstance(error, LookupError)


def test_illegal_transition_names_the_machine_state_and_event() -> None:
    error = IllegalTransition("task", "leave", "download")
    assert (error.machine, error.state, error.event) == ("task", "leave", "download")
    assert str(error) == "task: event download is not allowed in state leave"
    assert isinstance(error, SchedulerError)


def test_config_error_names_the_key() -> None:
    error = ConfigError("announce_ttl.multiplier", "must be > 1")
    assert error.key == "announce_ttl.multiplier"
    assert str(error) == "announce_ttl.multiplier: must be > 1"
    assert isinstance(error, SchedulerError)
    assert isinstance(error, ValueError)
