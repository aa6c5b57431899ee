"""Calling policy hooks with containment.

pluggy stops a hook call at the first exception, which would let one broken
plugin silence every other policy. :class:`PolicySet` therefore calls each
implementation on its own: a raise (or a result of the wrong type) is logged,
counted per ``(plugin, hook)``, reported to ``on_error``, and the remaining
plugins still decide.
"""

from __future__ import annotations

import functools
import logging
import math
import operator
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Final, NamedTuple, TypeGuard, TypeVar, final

import pluggy

from .. import hookspecs
from ..logfields import log_fields
from ._decision import ScheduleLimits
from ._errors import ConfigError
from ._events import ContactSource, Eviction, Expiry, Verdict
from ._lifecycle import PeerState
from ._model import Host, Peer, RecordKind, Task
from ._view import StateView

log = logging.getLogger("scheduler.plugins")

T = TypeVar("T")

PluginErrorCallback = Callable[[str, str, BaseException], None]
#: ``on_veto(plugin, reason)``: a plugin vetoed a candidate (the reason as counted).
VetoCallback = Callable[[str, str], None]

#: Distinct veto reasons counted per plugin; further ones count as :data:`OTHER_REASON`
#: (a reason is free text: one holding an id would make a metric label per candidate).
MAX_VETO_REASONS: Final = 32
OTHER_REASON: Final = "other"


def new_plugin_manager() -> pluggy.PluginManager:
    """A plugin manager with every scheduler hookspec added."""
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    return pm


class _BadResult(TypeError):
    pass


class _Call(NamedTuple):
    """One hook implementation, as :class:`PolicySet` calls it."""

    plugin: str
    #: Calls the implementation with the arguments it names, taken from the hook's kwargs;
    #: a raise is contained and reads as no answer (None).
    invoke: Callable[[Mapping[str, Any]], Any]


def _invoker(
    function: Callable[..., Any],
    argnames: Sequence[str],
    contain: Callable[[Exception], None],
) -> Callable[[Mapping[str, Any]], Any]:
    """``function`` called with the ``argnames`` of a hook's kwargs; an exception goes
    to ``contain`` (counted and logged) and the answer is None, as if the plugin had
    none. Made once per implementation: hooks run several times per message, and most
    implementations take one or two of their hook's arguments."""
    name: str | None = None
    take: Callable[[Mapping[str, Any]], tuple[Any, ...]] | None = None
    if len(argnames) == 1:
        (name,) = argnames
    elif argnames:
        take = operator.itemgetter(*argnames)

    def invoke(kwargs: Mapping[str, Any]) -> Any:
        try:
            if name is not None:
                return function(kwargs[name])
            if take is not None:
                return function(*take(kwargs))
            return function()
        except Exception as exc:
            contain(exc)
            return None

    return invoke


_DEFAULT_LIMITS = ScheduleLimits()
#: What a score may be (not a bool); a tuple, since ``int | float`` is built at every use.
_NUMBER: Final = (int, float)


@final
class PolicySet:
    """The registered plugins, called one implementation at a time."""

    def __init__(
        self,
        pm: pluggy.PluginManager,
        on_error: PluginErrorCallback | None = None,
    ) -> None:
        self.pm = pm
        self.errors: Counter[tuple[str, str]] = Counter()
        self.on_error = on_error
        #: Candidates vetoed per ``(plugin, reason)`` (reasons bounded per plugin).
        self.vetoes: Counter[tuple[str, str]] = Counter()
        self.on_veto: VetoCallback | None = None
        self._veto_reasons: dict[str, set[str]] = {}
        #: Each hook's caller, looked up once (its implementations are read at every call).
        self._callers: dict[str, pluggy.HookCaller] = {}
        #: Each hook's implementations as pluggy listed them, and the calls made of them.
        self._made: dict[str, tuple[list[pluggy.HookImpl], tuple[_Call, ...]]] = {}

    @classmethod
    def from_plugins(
        cls,
        plugins: Iterable[object],
        config: Mapping[str, Mapping[str, Any]] | None = None,
        on_error: PluginErrorCallback | None = None,
        defaults: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> PolicySet:
        """Register ``plugins`` (instances or modules) in order, apply replacements, configure."""
        pm = new_plugin_manager()
        for plugin in plugins:
            pm.register(plugin, name=plugin_name(plugin))
        return cls.finish(pm, config or {}, on_error, defaults)

    @classmethod
    def finish(
        cls,
        pm: pluggy.PluginManager,
        config: Mapping[str, Mapping[str, Any]],
        on_error: PluginErrorCallback | None = None,
        defaults: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> PolicySet:
        """Apply ``scheduler_replaces``, check hook names, and deliver the configuration.

        ``defaults`` are settings the host application supplies (e.g. the service's
        ``reconnect_grace``): merged under ``config`` for plugins that are loaded,
        and silently dropped for plugins that are not.
        """
        for replaced in pm.hook.scheduler_replaces():
            for name in replaced or ():
                pm.set_blocked(name)
        pm.check_pending()
        known = {name for name, _ in pm.list_name_plugin()}
        for section in config:
            if pm.is_blocked(section):
                log.warning(
                    "settings in [plugins.%s] have no effect: that plugin is disabled or replaced",
                    section,
                )
            elif section not in known:
                raise ConfigError(f"plugins.{section}", "no plugin of that name is loaded")
        merged = {name: dict(settings) for name, settings in config.items()}
        for name, settings in (defaults or {}).items():
            if name in known and not pm.is_blocked(name):
                merged[name] = {**settings, **merged.get(name, {})}
        pm.hook.scheduler_configure.call_historic(kwargs={"config": merged})
        return cls(pm, on_error)

    @property
    def names(self) -> list[str]:
        """Registered plugin names, in registration order."""
        return [name for name, plugin in self.pm.list_name_plugin() if plugin is not None]

    # --- decision hooks ---------------------------------------------------------------

    def host_expiry(self, host: Host, view: StateView, now: float) -> Expiry | None:
        return self._earliest("scheduler_host_expiry", {"host": host, "view": view, "now": now})

    def peer_expiry(self, peer: Peer, view: StateView, now: float) -> Expiry | None:
        return self._earliest("scheduler_peer_expiry", {"peer": peer, "view": view, "now": now})

    def task_expiry(self, task: Task, view: StateView, now: float) -> Expiry | None:
        return self._earliest("scheduler_task_expiry", {"task": task, "view": view, "now": now})

    def sweep(self, kind: RecordKind, view: StateView, now: float) -> list[Verdict]:
        kwargs = {"kind": kind, "view": view, "now": now}
        return self._concat("scheduler_sweep", kwargs, Verdict)

    def host_supersedes(self, host: Host, view: StateView, now: float) -> list[str]:
        kwargs = {"host": host, "view": view, "now": now}
        return self._concat("scheduler_host_supersedes", kwargs, str)

    # --- scheduling hooks -------------------------------------------------------------

    def schedule_limits(self) -> ScheduleLimits:
        """The first plugin's limits (the built-in ``evaluator``'s), else the defaults."""
        for plugin, result in self._results("scheduler_schedule_limits", {}):
            if isinstance(result, ScheduleLimits):
                return result
            self._contain(
                plugin,
                "scheduler_schedule_limits",
                _BadResult(f"expected ScheduleLimits or None, got {result!r:.200}"),
            )
        return _DEFAULT_LIMITS

    def fit_candidates(
        self, child: Peer, candidates: Sequence[Peer], view: StateView, now: float
    ) -> list[Peer]:
        """The candidates no plugin vetoes (``scheduler_candidate_veto``), in order."""
        hook_name = "scheduler_candidate_veto"
        calls = self._calls(hook_name)
        if not calls:
            return list(candidates)
        kwargs: dict[str, Any] = {"child": child, "view": view, "now": now}
        fit: list[Peer] = []
        for candidate in candidates:
            kwargs["parent"] = candidate
            for plugin, result in self._call_each(calls, kwargs):
                if isinstance(result, str):
                    self._vetoed(plugin, result, child, candidate)
                    break
                bad = _BadResult(f"expected str or None, got {result!r:.200}")
                self._contain(plugin, hook_name, bad)
            else:
                fit.append(candidate)
        return fit

    def candidate_veto(self, child: Peer, parent: Peer, view: StateView, now: float) -> str | None:
        """The first plugin's reason to refuse ``parent`` for ``child``; None: no veto."""
        hook_name = "scheduler_candidate_veto"
        kwargs = {"child": child, "parent": parent, "view": view, "now": now}
        for plugin, result in self._results(hook_name, kwargs):
            if isinstance(result, str):
                return result
            bad = _BadResult(f"expected str or None, got {result!r:.200}")
            self._contain(plugin, hook_name, bad)
        return None

    def candidate_scores(
        self, child: Peer, candidates: Sequence[Peer], view: StateView, now: float
    ) -> list[float]:
        """Each candidate's score: every plugin's answers summed.

        First each ``scheduler_candidate_scores`` answer (one call per plugin for
        all the candidates), then each ``scheduler_candidate_score`` answer (one
        call per plugin and candidate), in pluggy's order within each hook.
        """
        count = len(candidates)
        scores: list[float] | None = None
        kwargs: dict[str, Any] = {
            "child": child,
            "candidates": candidates,
            "view": view,
            "now": now,
        }
        batch_hook = "scheduler_candidate_scores"
        for plugin, result in self._results(batch_hook, kwargs):
            try:
                answer = _finite_numbers(result, count)
            except Exception as exc:
                self._contain(plugin, batch_hook, exc)
                continue
            if scores is None:
                scores = answer  # the first answer: nothing to add it to yet
            else:
                scores = [total + add for total, add in zip(scores, answer, strict=True)]
        if scores is None:
            scores = [0.0] * count
        calls = self._calls("scheduler_candidate_score")
        if calls:
            self._add_each_score(calls, scores, kwargs)
        return scores

    def _add_each_score(
        self, calls: Sequence[_Call], scores: list[float], kwargs: dict[str, Any]
    ) -> None:
        """Add every ``scheduler_candidate_score`` answer to ``scores``, in place."""
        hook_name = "scheduler_candidate_score"
        # One call per candidate and plugin, inlined: the hot loop of such a plugin.
        for index, candidate in enumerate(kwargs["candidates"]):
            kwargs["parent"] = candidate
            total = scores[index]
            for plugin, invoke in calls:
                result = invoke(kwargs)
                if result is None:
                    continue
                if _is_finite_number(result):
                    total += result
                    continue
                bad = _BadResult(f"expected a finite number, got {result!r:.200}")
                self._contain(plugin, hook_name, bad)
            scores[index] = total

    def candidate_score(self, child: Peer, parent: Peer, view: StateView, now: float) -> float:
        """The sum of every plugin's score of ``parent`` for ``child``."""
        return self.candidate_scores(child, [parent], view, now)[0]

    def select_parents(
        self, child: Peer, candidates: Sequence[Peer], view: StateView, now: float
    ) -> list[str] | None:
        """The first plugin's own selection (peer ids, best first); None: keep the ranking."""
        hook_name = "scheduler_select_parents"
        kwargs = {"child": child, "candidates": candidates, "view": view, "now": now}
        for plugin, result in self._results(hook_name, kwargs):
            try:
                if isinstance(result, str):
                    raise _BadResult("expected a sequence of peer ids, got one string")
                chosen = list(result)
                if not all(isinstance(peer_id, str) for peer_id in chosen):
                    raise _BadResult(f"expected peer ids: {chosen!r:.200}")
            except Exception as exc:
                self._contain(plugin, hook_name, exc)
                continue
            return chosen
        return None

    def proactive_push(self, child: Peer, lost_parent: Peer, view: StateView, now: float) -> bool:
        """False if any plugin disables the push to ``child`` for losing ``lost_parent``."""
        hook_name = "scheduler_proactive_push"
        kwargs = {"child": child, "lost_parent": lost_parent, "view": view, "now": now}
        allowed = True
        for plugin, result in self._results(hook_name, kwargs):
            if not isinstance(result, bool):
                self._contain(
                    plugin, hook_name, _BadResult(f"expected bool or None, got {result!r:.200}")
                )
            elif not result:
                allowed = False
        return allowed

    # --- notifications ----------------------------------------------------------------

    def host_contact(self, host: Host, source: ContactSource, now: float) -> None:
        self._notify("scheduler_host_contact", {"host": host, "source": source, "now": now})

    def host_disconnected(self, host: Host, now: float) -> None:
        self._notify("scheduler_host_disconnected", {"host": host, "now": now})

    def host_reconnected(self, host: Host, disconnected_for: float, now: float) -> None:
        self._notify(
            "scheduler_host_reconnected",
            {"host": host, "disconnected_for": disconnected_for, "now": now},
        )

    def evicted(self, eviction: Eviction) -> None:
        self._notify("scheduler_evicted", {"eviction": eviction})

    def peer_state_changed(
        self, peer: Peer, old_state: PeerState, view: StateView, now: float
    ) -> None:
        self._notify(
            "scheduler_peer_state_changed",
            {"peer": peer, "old_state": old_state, "view": view, "now": now},
        )

    def parent_failed(
        self,
        child: Peer,
        parent: Peer,
        reporter: Host,
        *,
        charged: bool,
        view: StateView,
        now: float,
    ) -> None:
        kwargs = {
            "child": child,
            "parent": parent,
            "reporter": reporter,
            "charged": charged,
            "view": view,
            "now": now,
        }
        self._notify("scheduler_parent_failed", kwargs)

    # --- machinery --------------------------------------------------------------------

    def _earliest(self, hook_name: str, kwargs: Mapping[str, Any]) -> Expiry | None:
        best: Expiry | None = None
        for plugin, invoke in self._calls(hook_name):
            result = invoke(kwargs)
            if result is None:
                continue
            if not isinstance(result, Expiry) or math.isnan(result.at):
                self._contain(
                    plugin, hook_name, _BadResult(f"expected Expiry or None, got {result!r:.200}")
                )
                continue
            if best is None or result.at < best.at:
                best = result
        return best

    def _concat(self, hook_name: str, kwargs: Mapping[str, Any], item_type: type[T]) -> list[T]:
        """Concatenate every plugin's iterable answer, dropping (and counting) malformed ones."""
        items: list[T] = []
        for plugin, invoke in self._calls(hook_name):
            result = invoke(kwargs)
            if result is None:
                continue
            try:  # a malformed answer is contained as a raise is
                answer = list(result)
                for item in answer:
                    if not isinstance(item, item_type):
                        raise _BadResult(
                            f"expected items of type {item_type.__name__}: {answer!r:.200}"
                        )
            except Exception as exc:
                self._contain(plugin, hook_name, exc)
                continue
            items.extend(answer)
        return items

    def _notify(self, hook_name: str, kwargs: Mapping[str, Any]) -> None:
        calls = self._calls(hook_name)
        if calls:  # nearly always none (no built-in policy listens to contacts)
            for _ in self._call_each(calls, kwargs):
                pass

    def _calls(self, hook_name: str) -> tuple[_Call, ...]:
        """The hook's implementations in pluggy's order (the last registered first).

        Made once per hook, and again only when pluggy's list changes: hooks are called
        several times per message, and their implementations nearly never change.
        """
        caller = self._callers.get(hook_name)
        if caller is None:
            caller = self._callers[hook_name] = getattr(self.pm.hook, hook_name)
        impls = caller.get_hookimpls()
        made = self._made.get(hook_name)
        if made is not None and made[0] == impls:  # the same HookImpl objects, in order
            return made[1]
        calls = tuple(
            _Call(
                impl.plugin_name,
                _invoker(
                    impl.function,
                    impl.argnames,
                    functools.partial(self._contain, impl.plugin_name, hook_name),
                ),
            )
            for impl in reversed(impls)
        )
        self._made[hook_name] = (impls, calls)
        return calls

    def _results(self, hook_name: str, kwargs: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
        """Yield ``(plugin_name, result)`` for each implementation that returned non-None."""
        return self._call_each(self._calls(hook_name), kwargs)

    @staticmethod
    def _call_each(calls: Sequence[_Call], kwargs: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
        for plugin, invoke in calls:
            result = invoke(kwargs)
            if result is not None:
                yield plugin, result

    def _vetoed(self, plugin: str, reason: str, child: Peer, candidate: Peer) -> None:
        """Count (and log, at debug) one veto; reasons past the per-plugin bound are 'other'."""
        reasons = self._veto_reasons.setdefault(plugin, set())
        if reason not in reasons:
            if len(reasons) < MAX_VETO_REASONS:
                reasons.add(reason)
            else:
                reason = OTHER_REASON
        self.vetoes[(plugin, reason)] += 1
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "candidate vetoed",
                extra=log_fields(plugin=plugin, reason=reason, child=child.id, parent=candidate.id),
            )
        if self.on_veto is not None:
            self.on_veto(plugin, reason)

    def _contain(self, plugin: str, hook_name: str, exc: BaseException) -> None:
        self.errors[(plugin, hook_name)] += 1
        log.error(
            "plugin %s raised in %s; ignoring its answer",
            plugin,
            hook_name,
            exc_info=(type(exc), exc, exc.__traceback__),
        )
        if self.on_error is not None:
            self.on_error(plugin, hook_name, exc)


_FLOAT: Final = frozenset({float})


def _is_finite_number(value: object) -> TypeGuard[float]:
    """An int or float (never a bool) that is neither infinite nor NaN."""
    return isinstance(value, _NUMBER) and not isinstance(value, bool) and math.isfinite(value)


def _finite_numbers(result: Any, count: int) -> list[float]:
    """A batch score answer as a list: exactly ``count`` finite numbers, else _BadResult."""
    if isinstance(result, (str, bytes)):
        raise _BadResult(f"expected a sequence of numbers, got {result!r:.200}")
    answer = list(result)
    if len(answer) != count:
        raise _BadResult(f"expected {count} scores, got {len(answer)}: {answer!r:.200}")
    # The usual answer, floats only, is checked in C: if their sum is finite, each one is
    # (an overflowing sum of finite floats falls through to the check of each).
    if {*map(type, answer)} <= _FLOAT and math.isfinite(sum(answer)):
        return answer
    if not all(map(_is_finite_number, answer)):
        raise _BadResult(f"expected finite numbers: {answer!r:.200}")
    return answer


def plugin_name(plugin: object) -> str:
    """A plugin's name: its ``name`` attribute, else its module or class name."""
    name = getattr(plugin, "name", None)
    if isinstance(name, str):
        return name
    if hasattr(plugin, "__name__"):
        return str(plugin.__name__)
    return type(plugin).__name__
