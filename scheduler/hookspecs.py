"""Every hook a scheduler plugin can implement.

Hooks are synchronous and should be pure: a policy *decides* (returns a
deadline, a list of verdicts, a list of hosts to supersede) and the core
*applies*. Decision hooks get ``view``, a read-only
:class:`~scheduler.core.StateView` of hosts, peers, tasks and counts, never
the mutable state: a hook cannot evict or register anything. Records passed
to hooks are the live objects owned by the core; read them, never mutate them.
All hooks are called with keyword arguments, and an implementation may accept
any subset of the documented arguments.

The core calls each implementation separately: one that raises is logged
and counted (``plugin_errors_total{plugin,hook}``), and the others still
decide. The exception is :func:`scheduler_configure`, whose errors are
configuration errors and stop start-up.

Implement hooks with :data:`scheduler.hookimpl`::

    from scheduler import hookimpl

    class MyPolicy:
        @hookimpl
        def scheduler_host_expiry(self, host, now):
            ...
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    # Only modules that never import this one: the engine imports the hookspecs.
    from .core._decision import ScheduleLimits
    from .core._events import ContactSource, Eviction, Expiry, Verdict
    from .core._lifecycle import PeerState
    from .core._model import Host, Peer, RecordKind, Task
    from .core._view import StateView

__all__ = [
    "PROJECT_NAME",
    "hookimpl",
    "hookspec",
    "scheduler_candidate_score",
    "scheduler_candidate_scores",
    "scheduler_candidate_veto",
    "scheduler_configure",
    "scheduler_evicted",
    "scheduler_host_contact",
    "scheduler_host_disconnected",
    "scheduler_host_expiry",
    "scheduler_host_reconnected",
    "scheduler_host_supersedes",
    "scheduler_parent_failed",
    "scheduler_peer_expiry",
    "scheduler_peer_state_changed",
    "scheduler_proactive_push",
    "scheduler_replaces",
    "scheduler_schedule_limits",
    "scheduler_select_parents",
    "scheduler_sweep",
    "scheduler_task_expiry",
]

PROJECT_NAME = "scheduler"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


# --- configuration and composition -------------------------------------------------


@hookspec(historic=True)
def scheduler_configure(config: Mapping[str, Mapping[str, Any]]) -> None:
    """Receive the plugin configuration, once, before any decision or notification hook.

    ``config`` maps a plugin name to its section (``[plugins.<name>]`` in the
    TOML file). Declare your settings once as a :class:`scheduler.settings.Section`
    (expose it as the plugin's ``settings``), set the defaults with
    ``SETTINGS.init(self)`` in ``__init__``, and here call
    ``SETTINGS.configure(self, config)``: it takes your section, rejects unknown keys,
    checks every value and assigns none until all are valid, raising
    :class:`scheduler.core.ConfigError` naming the bad key (the server then refuses to
    start with exit status 2). For rules across keys, ``SETTINGS.values(config, self)``,
    check, then ``SETTINGS.assign(self, values)``.

    The hook is historic: a plugin registered late still receives it.
    """


@hookspec
def scheduler_replaces() -> Iterable[str] | None:
    """Return the names of plugins (built-ins included) that this plugin replaces.

    The loader blocks those names after every plugin is registered, so a
    distribution such as ``dragonfly-compat`` can swap the built-in policies
    just by being enabled.
    """


# --- per-record deadlines ------------------------------------------------------------


@hookspec
def scheduler_host_expiry(host: Host, view: StateView, now: float) -> Expiry | None:
    """Return when ``host`` should be evicted, and why, or None for no opinion.

    Called after every change to the host (announce, contact, disconnect,
    reconnect), and to answer "how long would a disconnect leave this host?"
    for a disconnected copy of a connected host (``host_accepted.reconnect_grace``).
    The engine keeps the earliest deadline across all plugins and evicts the
    host when it passes, with that plugin's reason.
    """


@hookspec
def scheduler_peer_expiry(peer: Peer, view: StateView, now: float) -> Expiry | None:
    """Return when ``peer`` should be evicted, and why, or None for no opinion.

    Called after every change to the peer (register, state change, piece progress).
    """


@hookspec
def scheduler_task_expiry(task: Task, view: StateView, now: float) -> Expiry | None:
    """Return when ``task`` should be evicted, and why, or None for no opinion.

    Called when the task is created, changes state, or gains or loses a peer.
    """


# --- verdicts --------------------------------------------------------------------------


@hookspec
def scheduler_sweep(kind: RecordKind, view: StateView, now: float) -> Iterable[Verdict] | None:
    """Periodic batch decision for one kind of record (default every 60 s).

    Return verdicts for records to evict now, e.g. to enforce a capacity cap.
    Verdicts naming unknown records or another kind are ignored and logged.
    """


@hookspec
def scheduler_host_supersedes(host: Host, view: StateView, now: float) -> Iterable[str] | None:
    """After ``host`` announced, return ids of other hosts it supersedes.

    Each named host (never ``host`` itself) is evicted with reason ``superseded``.
    """


# --- scheduling ------------------------------------------------------------------------
#
# A decision for a child (a peer asking where to download from) samples up to
# ``filter_parent_limit`` candidates among the task's peers that can feed it,
# drops every candidate that breaks an invariant (the child itself, a peer on
# the child's host, a host not connected, a peer pending/received/failed/left,
# no finished piece unless back-to-source, blocklisted for the child, no free
# upload slot, a cycle, a bad node), then asks the hooks below. Plugins never
# see a candidate that breaks an invariant, and cannot make the core hand one out.


@hookspec
def scheduler_schedule_limits() -> ScheduleLimits | None:
    """Return the limits decisions are made with, or None for no opinion.

    The first plugin that answers wins (the built-in ``evaluator`` answers with
    its ``[plugins.evaluator]`` settings); with no answer the core uses
    :class:`scheduler.core.ScheduleLimits`'s defaults. Called once per decision.
    """


@hookspec
def scheduler_candidate_veto(child: Peer, parent: Peer, view: StateView, now: float) -> str | None:
    """Return a reason to refuse ``parent`` as a parent of ``child``, or None to accept it.

    ``parent`` already satisfies every invariant. Any plugin's reason removes
    it from this decision (the reason is for logs and tests). Called once per
    sampled candidate, so keep it O(1).
    """


@hookspec
def scheduler_candidate_score(
    child: Peer, parent: Peer, view: StateView, now: float
) -> float | None:
    """Return a number to add to ``parent``'s score for ``child``, or None for no opinion.

    The scores of every plugin are summed; candidates are ranked by the sum,
    highest first, and the top ``candidate_parent_limit`` are handed out. The
    built-in ``evaluator`` scores in ``[0, 1]`` (a load-aware weighted sum); a
    penalty is a negative number (``phi_accrual`` subtracts up to 1 for a
    suspected host). A result that is not a finite number is ignored and counted
    as a plugin error.

    Called once per candidate: a plugin that scores every candidate the same
    way is faster as :func:`scheduler_candidate_scores`, called once per decision.
    """


@hookspec
def scheduler_candidate_scores(
    child: Peer, candidates: Sequence[Peer], view: StateView, now: float
) -> Sequence[float] | None:
    """Return one number per candidate, in the order of ``candidates``, or None for no opinion.

    The batch form of :func:`scheduler_candidate_score`, called once per decision
    with every candidate left after the vetoes (possibly none): each number is
    added to that candidate's score like a per-candidate answer. Sums from this
    hook come first, then those of :func:`scheduler_candidate_score`; implement
    one of the two for a given figure, not both, or it counts twice. An answer of
    the wrong length or with an item that is not a finite number is ignored
    whole and counted as a plugin error. The built-in ``evaluator`` scores here.
    """


@hookspec
def scheduler_select_parents(
    child: Peer, candidates: Sequence[Peer], view: StateView, now: float
) -> Sequence[str] | None:
    """Replace the selection: return peer ids (best first), or None to keep the ranking.

    ``candidates`` are the sampled candidates that passed the invariants and
    the vetoes, ranked by score, best first. The first plugin that answers
    wins. The answer may name any peer of the task; the core drops ids that
    break an invariant (or repeat), and keeps the first ``candidate_parent_limit``.
    An empty answer means "no parent": the core applies its no-candidate rules
    (back-to-source, wait or fail).
    """


@hookspec
def scheduler_proactive_push(
    child: Peer, lost_parent: Peer, view: StateView, now: float
) -> bool | None:
    """Return False to let ``child`` find out for itself that ``lost_parent`` is gone.

    Called when a parent handed to a child that is still downloading becomes
    unschedulable (its host disconnected, left or was evicted; the parent
    failed or left), before the core pushes a fresh decision to the child.
    ``lost_parent`` may already be evicted (state ``leave``). If any plugin
    returns False, no push is sent: the child keeps its parents until it
    reschedules (Dragonfly's behaviour; ``dragonfly_compat`` does this).
    """


# --- notifications ---------------------------------------------------------------------


@hookspec
def scheduler_host_contact(host: Host, source: ContactSource, now: float) -> None:
    """``host`` showed it is alive: an announce, a pong, or any other message."""


@hookspec
def scheduler_host_disconnected(host: Host, now: float) -> None:
    """``host``'s session dropped without a leave; it is unschedulable from now on."""


@hookspec
def scheduler_host_reconnected(host: Host, disconnected_for: float, now: float) -> None:
    """``host`` announced on a new session before it was evicted."""


@hookspec
def scheduler_peer_state_changed(
    peer: Peer, old_state: PeerState, view: StateView, now: float
) -> None:
    """``peer`` moved from ``old_state`` to ``peer.state``.

    Called for every move of the peer lifecycle (registration, ``download_started``,
    ``back_to_source``, ``download_finished``, ``download_failed``), after the peer's
    own deadline was recomputed. Its eviction is :func:`scheduler_evicted` instead.
    """


@hookspec
def scheduler_parent_failed(  # noqa: PLR0917 - hooks are called by keyword
    child: Peer, parent: Peer, reporter: Host, charged: bool, view: StateView, now: float
) -> None:
    """``child`` (a peer of ``reporter``) reported ``parent`` as failed in a ``reschedule``.

    Called once per failed parent of a ``reschedule`` that counts: a live peer of the
    child's task that the scheduler handed to the child (other names are ignored and
    never reach a plugin). ``charged`` is True when the report was charged to the
    parent's host (``Host.upload_failed_count`` rose by one): the first from this
    reporting host within ``records.failure_report_window``. When it was, the
    parent host's deadline is recomputed right after this call, so a policy that
    reads the count in :func:`scheduler_host_expiry` sees it at once.
    """


@hookspec
def scheduler_evicted(eviction: Eviction) -> None:
    """A record was evicted. Drop any per-record state the plugin keeps."""
