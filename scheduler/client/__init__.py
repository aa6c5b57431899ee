"""The client side of protocol v1: a scheduler session, the reference peer daemon, and hosts.

* :func:`open_scheduler_session` connects, announces and keeps one session
  (heartbeat, re-announce, requests with deadlines, gathered into ``batch``
  frames as :class:`Batching` says);
* :func:`run_peer` is the peer daemon: it stays announced, reconnects with
  :class:`Backoff`, brings its peers back after a reconnect as the scheduler's
  ``boot_id`` says (:class:`BootWatch`), and leaves on shutdown;
* :func:`fetch_hosts`, :func:`fetch_peers`, :func:`fetch_tasks`, their
  ``render_*_table`` and :func:`print_table` read the scheduler's admin API;
* :func:`submit_preheat`, :func:`fetch_job` and :func:`follow_job` submit a
  preheat job to the admin API and follow it (``scheduler preheat``);
* :func:`fetch_schedulers` reads a cluster's members (``/api/v1/schedulers``) and
  :class:`Membership` keeps them; :class:`ClusterView` refreshes them in the
  background, :class:`ClusterRoutes` picks each task's scheduler (rendezvous over
  the members' names) and :func:`run_cluster_host` keeps a host announced to every
  member with each task on its owner (``run_peer`` does this for an admin URL);
* :func:`resolve_token` and :func:`client_ssl_context` gather the credentials
  (a bearer token, a CA file, a client certificate) for ``wss://`` and ``https://``.

Trio only; see ``docs/protocol.md`` for the wire protocol.
"""

from ._backoff import Backoff as Backoff
from ._batching import Batching as Batching
from ._boot import BootWatch as BootWatch
from ._boot import Resume as Resume
from ._cluster import ClusterView as ClusterView
from ._cluster import run_cluster_host as run_cluster_host
from ._connection import SchedulerSession as SchedulerSession
from ._connection import open_scheduler_session as open_scheduler_session
from ._credentials import client_ssl_context as client_ssl_context
from ._credentials import resolve_token as resolve_token
from ._errors import ConnectError as ConnectError
from ._errors import PermanentError as PermanentError
from ._errors import RequestError as RequestError
from ._errors import RequestTimeout as RequestTimeout
from ._errors import SchedulerClientError as SchedulerClientError
from ._errors import SessionLost as SessionLost
from ._hosts import HostsFetchError as HostsFetchError
from ._hosts import fetch_hosts as fetch_hosts
from ._hosts import fetch_peers as fetch_peers
from ._hosts import fetch_task as fetch_task
from ._hosts import fetch_tasks as fetch_tasks
from ._hosts import format_age as format_age
from ._hosts import print_hosts as print_hosts
from ._hosts import print_table as print_table
from ._hosts import render_hosts_table as render_hosts_table
from ._hosts import render_peers_table as render_peers_table
from ._hosts import render_task_tree as render_task_tree
from ._hosts import render_tasks_table as render_tasks_table
from ._jobs import fetch_job as fetch_job
from ._jobs import follow_job as follow_job
from ._jobs import submit_preheat as submit_preheat
from ._membership import Membership as Membership
from ._membership import MembershipError as MembershipError
from ._membership import SchedulerMember as SchedulerMember
from ._membership import fetch_schedulers as fetch_schedulers
from ._membership import parse_members as parse_members
from ._peer import PeerConfig as PeerConfig
from ._peer import run_peer as run_peer
from ._routing import ClusterRoutes as ClusterRoutes

__all__ = [
    "Backoff",
    "Batching",
    "BootWatch",
    "ClusterRoutes",
    "ClusterView",
    "ConnectError",
    "HostsFetchError",
    "Membership",
    "MembershipError",
    "PeerConfig",
    "PermanentError",
    "RequestError",
    "RequestTimeout",
    "Resume",
    "SchedulerClientError",
    "SchedulerMember",
    "SchedulerSession",
    "SessionLost",
    "client_ssl_context",
    "fetch_hosts",
    "fetch_job",
    "fetch_peers",
    "fetch_schedulers",
    "fetch_task",
    "fetch_tasks",
    "follow_job",
    "format_age",
    "open_scheduler_session",
    "parse_members",
    "print_hosts",
    "print_table",
    "render_hosts_table",
    "render_peers_table",
    "render_task_tree",
    "render_tasks_table",
    "resolve_token",
    "run_cluster_host",
    "run_peer",
    "submit_preheat",
]
