"""Jobs the scheduler runs for an operator: preheat (warm the swarm before a rollout).

Sans-IO, like :mod:`scheduler.core`: :class:`JobLedger` keeps the jobs and
decides which host to ask next; the service's job loop reads the live state,
reports it, and sends the ``fetch_task`` messages.
"""

from ._ledger import FINISHED as FINISHED
from ._ledger import HOST_TRANSITIONS as HOST_TRANSITIONS
from ._ledger import JOB_TRANSITIONS as JOB_TRANSITIONS
from ._ledger import Dispatch as Dispatch
from ._ledger import HostCandidate as HostCandidate
from ._ledger import HostJobEvent as HostJobEvent
from ._ledger import HostJobState as HostJobState
from ._ledger import HostProgress as HostProgress
from ._ledger import HostReport as HostReport
from ._ledger import Job as Job
from ._ledger import JobEvent as JobEvent
from ._ledger import JobLedger as JobLedger
from ._ledger import JobLimits as JobLimits
from ._ledger import JobRefused as JobRefused
from ._ledger import JobState as JobState
from ._ledger import Sources as Sources
from ._ledger import choose_hosts as choose_hosts
from ._request import JobRequestError as JobRequestError
from ._request import PreheatRequest as PreheatRequest
from ._request import Scope as Scope
from ._request import parse_job_request as parse_job_request

__all__ = [
    "FINISHED",
    "HOST_TRANSITIONS",
    "JOB_TRANSITIONS",
    "Dispatch",
    "HostCandidate",
    "HostJobEvent",
    "HostJobState",
    "HostProgress",
    "HostReport",
    "Job",
    "JobEvent",
    "JobLedger",
    "JobLimits",
    "JobRefused",
    "JobRequestError",
    "JobState",
    "PreheatRequest",
    "Scope",
    "Sources",
    "choose_hosts",
    "parse_job_request",
]
