"""Composing the built-in policies with third-party plugins into one :class:`PolicySet`."""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from ..core import ConfigError, PolicySet, new_plugin_manager, plugin_name
from ..core._policy import PluginErrorCallback
from ..settings import Section
from ._announce_ttl import AnnounceTTL
from ._capacity import Capacity
from ._disconnect_grace import DisconnectGrace
from ._evaluator import Evaluator
from ._hostname_unique import HostnameUnique
from ._peer_lifetime import PeerLifetime
from ._peer_start import PeerStart
from ._task_idle import TaskIdleTTL

#: The entry-point group third-party plugin distributions register under.
ENTRYPOINT_GROUP: Final = "scheduler.plugins"

#: Built-in plugin classes, registered in this order by :func:`load_policies`.
BUILTIN_PLUGINS: Final[tuple[type, ...]] = (
    AnnounceTTL,
    DisconnectGrace,
    PeerLifetime,
    PeerStart,
    TaskIdleTTL,
    HostnameUnique,
    Capacity,
    Evaluator,
)


def builtin_plugins() -> list[object]:
    """Fresh instances of every built-in policy."""
    return [cls() for cls in BUILTIN_PLUGINS]


def instantiate(obj: object) -> object:
    """Plugins may be given as a class (instantiated with no arguments), an instance or a module."""
    return obj() if inspect.isclass(obj) else obj


def import_object(spec: str) -> object:
    """Import ``"package.module:attribute"``; raise ConfigError with the spec on failure."""
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise ConfigError("plugins.enable", f"expected 'module:object', got {spec!r}")
    try:
        obj: object = importlib.import_module(module_name)
        for part in attribute.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise ConfigError("plugins.enable", f"cannot import {spec!r}: {exc}") from exc
    return obj


def installed_plugins() -> dict[str, importlib.metadata.EntryPoint]:
    """Plugins installed under the ``scheduler.plugins`` entry-point group, by name."""
    return {ep.name: ep for ep in importlib.metadata.entry_points(group=ENTRYPOINT_GROUP)}


def load_policies(
    *,
    config: Mapping[str, Mapping[str, Any]] | None = None,
    enable: Sequence[str] = (),
    disable: Iterable[str] = (),
    plugins: Sequence[object] = (),
    entrypoints: bool = False,
    on_error: PluginErrorCallback | None = None,
    defaults: Mapping[str, Mapping[str, Any]] | None = None,
) -> PolicySet:
    """Compose the policy set: built-ins, entry points, ``enable`` specs, then ``plugins``.

    * ``enable`` names plugins to add: an installed entry-point name
      (``"phi_accrual"``) or an import spec (``"package.module:object"``);
    * ``entrypoints=True`` adds *every* installed entry-point plugin (like
      pytest's autoload). It is off by default, so installing a distribution
      never changes a running deployment's policy by itself;
    * ``disable`` blocks plugins by name (built-ins included) before anything
      is registered; a plugin's ``scheduler_replaces`` hook blocks the names it
      replaces afterwards. Unknown hook names fail in ``check_pending()``;
    * ``defaults`` are settings from the host application, applied under
      ``config`` to the plugins that end up loaded (see ``PolicySet.finish``).
    """
    pm = new_plugin_manager()
    for name in disable:
        pm.set_blocked(name)

    def register(obj: object, name: str | None = None) -> None:
        plugin = instantiate(obj)
        name = name or plugin_name(plugin)
        if pm.is_blocked(name):
            return
        if pm.has_plugin(name):
            raise ConfigError("plugins", f"two plugins are named {name!r}; disable one by name")
        pm.register(plugin, name=name)

    for builtin in builtin_plugins():
        register(builtin)
    installed = installed_plugins()
    wanted: list[str] = [name for name in installed if entrypoints]
    for spec in enable:
        if ":" in spec:
            register(import_object(spec))
        elif spec in installed:
            wanted.append(spec)
        else:
            known = ", ".join(sorted(installed)) or "none installed"
            raise ConfigError("plugins.enable", f"no plugin named {spec!r} (installed: {known})")
    for name in dict.fromkeys(wanted):
        if not pm.is_blocked(name) and not pm.has_plugin(name):
            register(installed[name].load(), name)
    for plugin in plugins:
        register(plugin)
    return PolicySet.finish(pm, config or {}, on_error, defaults)


def plugins_in_force(policies: PolicySet) -> dict[str, Any]:
    """What ``GET /api/v1/plugins`` answers: each loaded plugin, its settings and figures.

    ``plugins`` lists the registered plugins in registration order, each with its
    ``name``, the ``module`` it comes from, whether it is ``builtin``, the ``hooks`` it
    implements, its ``settings`` in force (JSON values: durations in seconds; null
    for a plugin that declares none), and the ``errors`` (per hook) and ``vetoes``
    (per reason) counted so far. ``blocked`` names the plugins disabled or replaced.
    """
    pm = policies.pm
    hooks: dict[str, list[str]] = {}
    for caller_name in sorted(vars(pm.hook)):
        caller = getattr(pm.hook, caller_name)
        for impl in caller.get_hookimpls():
            hooks.setdefault(impl.plugin_name, []).append(caller_name)
    described: list[dict[str, Any]] = []
    blocked: list[str] = []
    for name, plugin in pm.list_name_plugin():
        if plugin is None:
            blocked.append(name)
            continue
        section = getattr(plugin, "settings", None)
        settings = (
            {s.key: _jsonable(getattr(plugin, s.attr, None)) for s in section}
            if isinstance(section, Section)
            else None
        )
        module = plugin.__name__ if inspect.ismodule(plugin) else type(plugin).__module__
        described.append(
            {
                "name": name,
                "module": module,
                "builtin": isinstance(plugin, BUILTIN_PLUGINS),
                "hooks": [h for h in hooks.get(name, []) if h != "scheduler_configure"],
                "settings": settings,
                "errors": _counts_of(name, policies.errors),
                "vetoes": _counts_of(name, policies.vetoes),
            }
        )
    return {"plugins": described, "blocked": sorted(blocked)}


def _counts_of(plugin: str, counts: Mapping[tuple[str, str], int]) -> dict[str, int]:
    """One plugin's counts by their second key (a hook, a reason), sorted."""
    return {key: n for (name, key), n in sorted(counts.items()) if name == plugin}


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    return value
