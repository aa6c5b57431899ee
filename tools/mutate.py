"""This project's mutation testing: ``nox -s mutate [-- PATH ...]``.

The runner is the kit's (``python -m scheduler.testing.mutate``, the same one plugin
authors use; see docs/testing.md). This file only says what this project mutates and
which test files state each module's behaviour, so that ``-- PATH`` runs are fast.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _load_runner() -> object:
    """The kit's runner, loaded by path: importing ``scheduler`` here would keep mutmut
    from importing the mutated copies in its workers."""
    spec = importlib.util.spec_from_file_location(
        "scheduler_mutation_runner", ROOT / "scheduler" / "testing" / "_mutate.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


runner: Any = _load_runner()
MUTATED_ROOTS = (
    "scheduler/core",
    "scheduler/protocol",
    "scheduler/policies",
    # The session rules: what one WebSocket session may do, and what follows (sans-IO).
    "scheduler/session",
    "scheduler/rendezvous.py",
    # The job ledger: preheat jobs, their hosts, and the origin-sparing dispatch (sans-IO).
    "scheduler/jobs",
    # The transport's sans-IO connection object and its RFC 6455 codec.
    "scheduler/transport/_codec.py",
    "scheduler/transport/_connection.py",
)

#: The statements of the decision's rules (issue 8): filters, scores, limits, origin,
#: seeds, slots and pushes, at the unit level and through the facade.
_SCHEDULING_TESTS: tuple[str, ...] = (
    "tests/test_scheduling_rules.py",
    "tests/test_scheduling.py",
    "tests/test_resource_bounds.py",
)
#: The peer ledger: registration, progress, the task state it moves, eviction.
_PEER_LEDGER_TESTS: tuple[str, ...] = (
    "tests/test_peers.py",
    "tests/test_ledgers.py",
    "tests/test_state.py",
    "tests/test_lifecycle.py",
    "tests/test_resource_bounds.py",
)

#: The session rules: frames in, replies, closes and core events out; admission, rate
#: limits, liveness, identity, networks, placement and the routing of pushes.
_SESSION_TESTS: tuple[str, ...] = (
    "tests/test_session_messages.py",
    "tests/test_session_details.py",
    "tests/test_session_rules.py",
    "tests/test_session_limits.py",
    "tests/test_session_scheduling.py",
    "tests/test_identity_rules.py",
    "tests/test_liveness.py",
    "tests/test_liveness_wheel.py",
    "tests/test_host_addresses.py",
    "tests/test_batch_rules.py",
    "tests/test_input_hygiene.py",
    "tests/test_cluster_routing.py",
)

#: The test files that state the behaviour of a module. When every requested module
#: is listed here, only these files run, which keeps ``-- PATH`` runs fast; any other
#: module brings in the whole suite (so a full run is never weaker than the suite).
TESTS_FOR_MODULE: dict[str, tuple[str, ...]] = {
    "scheduler/core/_deadlines.py": (
        "tests/test_deadlines.py",
        "tests/test_deadline_queue.py",
        "tests/test_gc_slices.py",
    ),
    "scheduler/core/_bitset.py": ("tests/test_bitset.py",),
    **dict.fromkeys(
        ("scheduler/jobs/__init__.py", "scheduler/jobs/_ledger.py", "scheduler/jobs/_request.py"),
        ("tests/test_jobs.py",),
    ),
    "scheduler/core/_limits.py": ("tests/test_resource_bounds.py",),
    "scheduler/core/_errors.py": ("tests/test_errors.py",),
    "scheduler/core/_lifecycle.py": (
        "tests/test_lifecycle.py",
        "tests/test_lifecycle_tables.py",
    ),
    **dict.fromkeys(
        (
            "scheduler/policies/__init__.py",
            "scheduler/policies/_announce_ttl.py",
            "scheduler/policies/_capacity.py",
            "scheduler/policies/_disconnect_grace.py",
            "scheduler/policies/_hostname_unique.py",
            "scheduler/policies/_peer_lifetime.py",
            "scheduler/policies/_task_idle.py",
        ),
        ("tests/test_policies_rules.py",),
    ),
    "scheduler/policies/_loader.py": (
        "tests/test_policy_loader.py",
        "tests/test_policies.py",
    ),
    **dict.fromkeys(
        (
            "scheduler/protocol/__init__.py",
            "scheduler/protocol/_codec.py",
            "scheduler/protocol/_errors.py",
            "scheduler/protocol/_messages.py",
        ),
        ("tests/test_codec_rules.py", "tests/test_protocol.py", "tests/test_batch_rules.py"),
    ),
    # --- the ledgers, the GC engine, the facade, the records, events, config, policy calls
    "scheduler/core/_ledger.py": (
        "tests/test_gc_engine.py",
        "tests/test_gc_slices.py",
        "tests/test_ledger_rules.py",
        "tests/test_state.py",
    ),
    "scheduler/core/_hosts.py": (
        "tests/test_ledger_rules.py",
        "tests/test_state.py",
        "tests/test_ledgers.py",
    ),
    "scheduler/core/_tasks.py": (
        "tests/test_ledger_rules.py",
        "tests/test_gc_engine.py",
        "tests/test_state.py",
        "tests/test_ledgers.py",
        "tests/test_resource_bounds.py",
    ),
    "scheduler/core/_gc.py": (
        "tests/test_gc_engine.py",
        "tests/test_gc_slices.py",
        "tests/test_state.py",
    ),
    "scheduler/core/_state.py": (
        "tests/test_core_answers.py",
        "tests/test_resource_bounds.py",
        "tests/test_state_facade.py",
        "tests/test_gc_engine.py",
        "tests/test_gc_slices.py",
        "tests/test_ledger_rules.py",
        "tests/test_state.py",
        "tests/test_ledgers.py",
    ),
    "scheduler/core/_model.py": (
        "tests/test_model.py",
        "tests/test_state.py",
        "tests/test_ledgers.py",
    ),
    "scheduler/core/_events.py": ("tests/test_model.py", "tests/test_state.py"),
    "scheduler/core/_config.py": (
        "tests/test_config_values.py",
        "tests/test_policies.py",
        "tests/test_settings.py",
    ),
    "scheduler/core/_policy.py": ("tests/test_policy_set.py", "tests/test_policies.py"),
    "scheduler/transport/_codec.py": ("tests/test_transport_connection.py",),
    "scheduler/transport/_connection.py": ("tests/test_transport_connection.py",),
    # --- end of the ledgers block
    # --- the scheduling core (issue 8) and the peer ledger: the rules of a decision ---
    "scheduler/core/_badnode.py": ("tests/test_badnode.py",),
    "scheduler/core/_costs.py": ("tests/test_badnode.py", *_SCHEDULING_TESTS),
    "scheduler/rendezvous.py": ("tests/test_rendezvous.py", "tests/test_cluster_routing.py"),
    "scheduler/core/_candidates.py": _SCHEDULING_TESTS,
    "scheduler/core/_decision.py": _SCHEDULING_TESTS,
    "scheduler/core/_edges.py": _SCHEDULING_TESTS,
    "scheduler/core/_feeders.py": _SCHEDULING_TESTS,
    "scheduler/core/_origin.py": _SCHEDULING_TESTS,
    # A reschedule's failed parents: charged, blocklisted, heard by the plugins.
    "scheduler/core/_pipeline.py": (
        *_SCHEDULING_TESTS,
        "tests/test_core_answers.py",
        "tests/test_parent_reports.py",
        "tests/test_plugin_notifications.py",
        "tests/test_seed_scope.py",
    ),
    "scheduler/core/_followup.py": (*_SCHEDULING_TESTS, "tests/test_core_answers.py"),
    # --- the core's one-call answers and its GC driver
    "scheduler/core/_results.py": (
        "tests/test_core_answers.py",
        "tests/test_session_scheduling.py",
    ),
    "scheduler/core/_driver.py": (
        "tests/test_core_answers.py",
        "tests/test_gc_loops.py",
    ),
    "scheduler/core/_peers.py": _PEER_LEDGER_TESTS,
    "scheduler/policies/_evaluator.py": ("tests/test_evaluator.py", *_SCHEDULING_TESTS),
    # Each host's upload load, counted from its children's reports.
    "scheduler/core/_uploads.py": ("tests/test_uploads.py",),
    **dict.fromkeys(
        sorted(
            f"scheduler/session/{path.name}"
            for path in (ROOT / "scheduler" / "session").glob("*.py")
        ),
        _SESSION_TESTS,
    ),
}

PROJECT = runner.MutationProject(
    root=ROOT,
    roots=MUTATED_ROOTS,
    tests=("tests",),
    # Every test module except those that start real processes (which never see a mutant)
    # or a PostgreSQL server (the registry's tests, which mutate nothing mutated here).
    pytest_args=("-m", "not e2e and not postgres"),
    tests_for_module=TESTS_FOR_MODULE,
    equivalents="tests/mutation-equivalents.toml",
)

if __name__ == "__main__":
    sys.exit(runner.main(project=PROJECT))
