"""The cluster registry: schedulers' leases on PostgreSQL (``scheduler serve --registry``).

The SQL, the migrations and the rules (`findings`, `LeaseKeeper`) import no driver; the
`RegistryStore` (psycopg 3, blocking) is imported from ``scheduler.registry._store`` by
whoever needs it, so that this package imports without the ``cluster`` extra installed.
"""

from typing import TYPE_CHECKING

from ._check import Finding as Finding
from ._check import Problem as Problem
from ._check import Snapshot as Snapshot
from ._check import findings as findings
from ._lease import LeaseKeeper as LeaseKeeper
from ._lease import Step as Step
from ._migrations import MIGRATIONS as MIGRATIONS
from ._migrations import Migration as Migration
from ._migrations import MigrationPlan as MigrationPlan
from ._migrations import plan as plan
from ._model import DEFAULT_CLUSTER as DEFAULT_CLUSTER
from ._model import Identity as Identity
from ._model import Lease as Lease
from ._model import LeaseLost as LeaseLost
from ._model import Member as Member
from ._model import NameTaken as NameTaken
from ._model import RegistryError as RegistryError
from ._model import RegistryUnavailable as RegistryUnavailable
from ._model import Roster as Roster
from ._model import RowState as RowState
from ._model import SchemaError as SchemaError
from ._outage import IllegalTransition as IllegalTransition
from ._outage import OutageWatch as OutageWatch
from ._outage import ProbeAnswer as ProbeAnswer
from ._outage import Standing as Standing
from ._outage import Verdict as Verdict
from ._outage import verdict_of as verdict_of
from ._trust import ClusterKeys as ClusterKeys
from ._trust import HolderDecision as HolderDecision
from ._trust import RowFault as RowFault
from ._trust import Screened as Screened
from ._trust import judge_holder as judge_holder
from ._trust import screen as screen
from ._trust import text_problem as text_problem
from ._trust import url_problem as url_problem

if TYPE_CHECKING:
    from ._store import RegistryStore as RegistryStore


__all__ = [
    "DEFAULT_CLUSTER",
    "MIGRATIONS",
    "ClusterKeys",
    "Finding",
    "HolderDecision",
    "Identity",
    "IllegalTransition",
    "Lease",
    "LeaseKeeper",
    "LeaseLost",
    "Member",
    "Migration",
    "MigrationPlan",
    "NameTaken",
    "OutageWatch",
    "ProbeAnswer",
    "Problem",
    "RegistryError",
    "RegistryStore",
    "RegistryUnavailable",
    "Roster",
    "RowFault",
    "RowState",
    "SchemaError",
    "Screened",
    "Snapshot",
    "Standing",
    "Step",
    "Verdict",
    "findings",
    "judge_holder",
    "plan",
    "screen",
    "text_problem",
    "url_problem",
    "verdict_of",
]


def __getattr__(name: str) -> object:
    # The store needs psycopg (the `cluster` extra): imported on first use only.
    if name == "RegistryStore":
        from ._store import RegistryStore  # noqa: PLC0415

        return RegistryStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
