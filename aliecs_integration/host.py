"""The plugin host: discovers plugins, loads the enabled ones, and fires hooks in isolation.

Loading rules (``docs/settings.md``):

- plugins are discovered through the entry-point group ``aliecs_integration.plugins``; the
  entry point's name is the plugin's name. The built-ins ship their entry points the same way.
- ``core-kafka`` is always loaded; any other plugin only when ``integrationPlugins`` names it
  and, if it declares an ``endpoint_setting``, that setting is present.
- a name nobody provides, a plugin whose import or construction raises, a plugin with hook
  implementations that match no spec: each is reported with the plugin's name (log and
  :meth:`PluginHost.list_plugins`) and the others still load.

Every hook call goes through :meth:`PluginHost.fire`, which calls each plugin's implementation
separately, so one plugin's exception is logged with its name and the other plugins still run.
"""

from __future__ import annotations

import importlib.metadata
import logging
import threading
import time
import types
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

import attrs
import pluggy

from aliecs_integration import hookspecs
from aliecs_integration.errors import PluginError
from aliecs_integration.publish.metrics import MetricsSnapshot
from aliecs_integration.records import (
    CallFunction,
    ConnectionState,
    DeliveryReport,
    HostStartEvent,
    HostStopEvent,
    PluginContext,
)
from aliecs_integration.settings.core import Settings

ENTRY_POINT_GROUP = "aliecs_integration.plugins"
ALWAYS_ON = ("core-kafka",)
"""Plugins loaded whatever ``integrationPlugins`` says."""

log = logging.getLogger(__name__)
_clock = time.perf_counter

E = TypeVar("E")


@attrs.frozen
class PluginFailure:
    """One plugin's implementation of one hook raised."""

    plugin: str
    hook: str
    error: BaseException

    def __str__(self) -> str:
        return f"plugin '{self.plugin}' failed in {self.hook}: {self.error!r}"


@attrs.frozen
class HostStopReport:
    """What :meth:`PluginHost.stop` saw: the plugins' ``on_host_stop`` failures, and the final
    delivery report of each plugin that delivers events (by plugin name)."""

    failures: list[PluginFailure]
    deliveries: dict[str, DeliveryReport]

    @property
    def undelivered(self) -> int:
        """Events handed to a plugin and neither delivered, failed nor counted as dropped."""
        return sum(r.undelivered for r in self.deliveries.values())


@attrs.frozen
class PluginStatus:
    """A discovered or requested plugin as the host lists it."""

    name: str
    pretty_name: str
    loaded: bool
    endpoint: str = ""
    state: str = ConnectionState.UNKNOWN.value
    reason: str = ""
    """Why the plugin was not loaded (empty when loaded)."""
    origin: str = ""
    """Where it comes from: ``dist==version:module:attr`` of its entry point."""


def _origin(ep: importlib.metadata.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    where = f"{dist.name}=={dist.version}:" if dist is not None else ""
    return f"{where}{ep.value}"


def declared_settings_keys(
    entry_points: Iterable[importlib.metadata.EntryPoint] | None = None,
) -> frozenset[str]:
    """The top-level settings keys the installed plugins declare (``endpoint_setting`` and
    ``settings_keys``), read from each entry point's object without instantiating it. A plugin
    that cannot be imported declares nothing (the host reports it when it loads plugins)."""
    eps = entry_points
    if eps is None:
        eps = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    keys: set[str] = set()
    for ep in eps:
        try:
            obj = ep.load()
        except Exception:
            continue
        endpoint = getattr(obj, "endpoint_setting", None)
        if isinstance(endpoint, str) and endpoint:
            keys.add(endpoint)
        declared = getattr(obj, "settings_keys", ())
        if isinstance(declared, tuple | list | frozenset | set):
            keys.update(k for k in declared if isinstance(k, str))
    return frozenset(keys)


class PluginHost:
    """Loads plugins per the settings and dispatches hooks to them.

    ``entry_points`` replaces discovery (tests); ``extra_plugins`` registers ready objects or
    factories under the given names in addition to what discovery loads (benchmarks, tests).
    A hook implementation that runs longer than ``slow_hook_s`` is logged as a warning with the
    plugin's name (hooks cannot be interrupted: they run on the environment's thread).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        entry_points: Iterable[importlib.metadata.EntryPoint] | None = None,
        extra_plugins: Mapping[str, object] | None = None,
        slow_hook_s: float = 0.5,
    ) -> None:
        self.settings = settings
        self.pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.pm.add_hookspecs(hookspecs)
        self._entry_points = entry_points
        self._extra = dict(extra_plugins or {})
        self._statuses: dict[str, PluginStatus] = {}
        self._call_functions: dict[str, CallFunction] = {}
        self._dispatch: dict[str, tuple[tuple[str, Callable[..., Any]], ...]] = {}
        self._lock = threading.Lock()
        self._admin_lock = threading.RLock()  # loading, stopping and reconfiguring plugins
        self._started = False
        self._slow_hook_s = slow_hook_s
        self.failure_count: dict[str, int] = {}
        self._slow_count: dict[str, int] = {}
        self._last_failure: dict[str, PluginFailure] = {}
        self._variable_defaults: dict[str, str] = {}
        self.instance_id = str(uuid.uuid4())
        """This process's id (``coreStartEvent.frameworkId``), logged at start."""

    # ----------------------------------------------------------------- loading

    def start(self, *, listing: bool = False) -> None:
        """Discover, load and instantiate the enabled plugins, then fire ``on_host_start``
        (with ``listing``: the host only lists plugins, they must publish nothing; see
        :class:`~aliecs_integration.records.HostStartEvent`).

        Never raises because of a plugin: failures are reported in :meth:`list_plugins`.
        Raises :class:`PluginError` when called twice.
        """
        if self._started:
            raise PluginError("plugin host already started")
        self._started = True
        wanted = set(ALWAYS_ON) | set(self.settings.integration_plugins)
        discovered = self._discover()
        for name, ep in discovered.items():
            if name not in wanted:
                self._statuses[name] = PluginStatus(
                    name, name, False, reason="not named in integrationPlugins", origin=_origin(ep)
                )
                continue
            self._load_entry_point(name, ep)
        for name in sorted(wanted - discovered.keys() - self._extra.keys()):
            reason = (
                f"no installed plugin provides '{name}' (entry-point group {ENTRY_POINT_GROUP})"
            )
            log.error("integrationPlugins: %s", reason)
            self._statuses[name] = PluginStatus(name, name, False, reason=reason)
        for name, obj in self._extra.items():
            self._instantiate(name, obj, origin="registered in-process")
        self._collect_call_functions()
        self._collect_variable_defaults()
        log.info("instance %s started with plugins: %s", self.instance_id,
                 ", ".join(self.plugin_names()) or "none")
        self.fire(hookspecs.on_host_start,
                  HostStartEvent(plugin_names=tuple(self.plugin_names()),
                                 framework_id=self.instance_id, listing=listing))

    def _discover(self) -> dict[str, importlib.metadata.EntryPoint]:
        eps = self._entry_points
        if eps is None:
            eps = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
        found: dict[str, importlib.metadata.EntryPoint] = {}
        for ep in eps:
            if ep.name in found:
                log.warning(
                    "plugin '%s' is provided twice (%s and %s); using the first",
                    ep.name, _origin(found[ep.name]), _origin(ep),
                )
                continue
            found[ep.name] = ep
        return found

    def _load_entry_point(self, name: str, ep: importlib.metadata.EntryPoint) -> None:
        try:
            obj = ep.load()
        except Exception as exc:
            self._refuse(name, f"import failed: {exc!r}", origin=_origin(ep), exc=exc)
            return
        endpoint_setting = getattr(obj, "endpoint_setting", None)
        if endpoint_setting and self.settings.get(endpoint_setting) in (None, ""):
            self._refuse(
                name,
                f"setting '{endpoint_setting}' is missing (needed by plugin '{name}')",
                origin=_origin(ep),
                pretty=getattr(obj, "pretty_name", "") or name,
            )
            return
        self._instantiate(name, obj, origin=_origin(ep))

    def _instantiate(self, name: str, obj: object, *, origin: str) -> None:
        pretty = getattr(obj, "pretty_name", "") or name
        plugin = obj
        if not isinstance(obj, types.ModuleType) and callable(obj):
            try:
                plugin = obj(PluginContext(name=name, settings=self.settings,
                                           instance_id=self.instance_id))
            except Exception as exc:
                self._refuse(name, f"initialisation failed: {exc!r}", origin=origin, pretty=pretty,
                             exc=exc)
                return
        try:
            self._register(name, plugin)
        except Exception as exc:
            self._refuse(name, f"registration failed: {exc}", origin=origin, pretty=pretty, exc=exc)
            return
        self._statuses[name] = PluginStatus(name, pretty, True, origin=origin)
        log.info("plugin '%s' (%s) loaded from %s", name, pretty, origin)

    def _register(self, name: str, plugin: object) -> None:
        self.pm.register(plugin, name=name)
        try:
            self.pm.check_pending()
            for caller in self.pm.get_hookcallers(plugin) or ():
                for impl in caller.get_hookimpls():
                    if impl.plugin_name == name and (impl.hookwrapper or impl.wrapper):
                        raise PluginError(
                            f"hook wrappers are not supported ({caller.name} in plugin '{name}')"
                        )
        except Exception:
            self.pm.unregister(plugin, name=name)
            raise
        finally:
            self._rebuild_dispatch()

    def _refuse(
        self, name: str, reason: str, *, origin: str = "", pretty: str = "",
        exc: BaseException | None = None,
    ) -> None:
        log.error("plugin '%s' not loaded: %s", name, reason, exc_info=exc)
        self._statuses[name] = PluginStatus(name, pretty or name, False, reason=reason,
                                            origin=origin)

    def _rebuild_dispatch(self) -> None:
        table: dict[str, tuple[tuple[str, Callable[..., Any]], ...]] = {}
        for hook_name in dir(self.pm.hook):
            caller = getattr(self.pm.hook, hook_name)
            if not isinstance(caller, pluggy.HookCaller):
                continue
            # pluggy calls the last-registered implementation first; keep that order.
            table[hook_name] = tuple(
                (impl.plugin_name, impl.function) for impl in reversed(caller.get_hookimpls())
            )
        with self._lock:
            self._dispatch = table

    def _collect_call_functions(self, only: str | None = None) -> None:
        found = dict(self._call_functions)
        for plugin_name, function in self._dispatch.get("register_call_functions", ()):
            if only is not None and plugin_name != only:
                continue
            try:
                exported = dict(function())
            except Exception as exc:
                self._record_failure(plugin_name, "register_call_functions", exc)
                continue
            for bare, fn in exported.items():
                if not callable(fn) or not bare.isidentifier():
                    log.error("plugin '%s' exported an invalid call function %r", plugin_name, bare)
                    continue
                found[f"{plugin_name}.{bare}"] = fn
        self._call_functions = found  # replaced whole: readers on other threads see either

    def _collect_variable_defaults(self) -> None:
        self._variable_defaults = {}
        for name, plugin in self.pm.list_name_plugin():
            declared = getattr(plugin, "variable_defaults", None) or {}
            if not isinstance(declared, Mapping) or not all(
                    isinstance(k, str) and isinstance(v, str) for k, v in declared.items()):
                log.error("plugin '%s': variable_defaults must map names to strings, got %r",
                          name, declared)
                continue
            self._variable_defaults.update(declared)

    def variable_defaults(self) -> dict[str, str]:
        """The environment-variable defaults the loaded plugins declare (``variable_defaults``
        of each plugin), the lowest-precedence layer of an environment's variables."""
        return dict(self._variable_defaults)

    # ----------------------------------------------------------------- dispatching

    def fire(self, hook: Callable[[E], None], event: E) -> list[PluginFailure]:
        """Call every plugin's implementation of ``hook`` (a spec of
        :mod:`aliecs_integration.hookspecs`, e.g. ``hookspecs.on_call``) with ``event=event``;
        the type checker holds ``event`` to the record type the spec declares.

        Implementations run one after the other on the calling thread; an exception from one is
        logged with the plugin's name and returned, and the others still run. Never raises,
        except ``KeyError`` for a function that is not a hook spec (a programming error).
        """
        impls = self._dispatch.get(hook.__name__)
        if impls is None:
            if not isinstance(getattr(self.pm.hook, hook.__name__, None), pluggy.HookCaller):
                raise KeyError(f"no hook named {hook.__name__!r}")
            return []
        failures: list[PluginFailure] = []
        slow = self._slow_hook_s
        started = _clock()
        for plugin_name, function in impls:
            try:
                function(event=event)
            except Exception as exc:
                failures.append(self._record_failure(plugin_name, hook.__name__, exc))
            done = _clock()
            if done - started > slow:
                self._slow(plugin_name, hook.__name__, done - started)
                done = _clock()
            started = done
        return failures

    def _fire_each(self, hook_name: str, make_event: Callable[[], object],
                   only: str | None = None) -> list[PluginFailure]:
        """Call ``hook_name`` of every plugin (or of plugin ``only``) in turn, each with an
        event made just before its call (e.g. the time left of a shared deadline); failures
        are recorded and returned, the others still run. Not timed: for the host's own
        start and stop hooks, which may flush."""
        failures: list[PluginFailure] = []
        for plugin_name, function in self._dispatch.get(hook_name, ()):
            if only is not None and plugin_name != only:
                continue
            try:
                function(event=make_event())
            except Exception as exc:
                failures.append(self._record_failure(plugin_name, hook_name, exc))
        return failures

    def _slow(self, plugin_name: str, hook_name: str, elapsed: float) -> None:
        """A hook call took longer than ``slow_hook_s``: counted and logged (not at host stop,
        which may flush)."""
        if hook_name != "on_host_stop":
            with self._lock:
                self._slow_count[plugin_name] = self._slow_count.get(plugin_name, 0) + 1
            log.warning("plugin '%s' took %.3f s in %s (slow hooks delay the environment's "
                        "transition)", plugin_name, elapsed, hook_name)

    def _record_failure(self, plugin_name: str, hook_name: str, exc: Exception) -> PluginFailure:
        failure = PluginFailure(plugin_name, hook_name, exc)
        with self._lock:
            self.failure_count[plugin_name] = self.failure_count.get(plugin_name, 0) + 1
            self._last_failure[plugin_name] = failure
        log.error("%s", failure, exc_info=exc)
        return failure

    def failures(self) -> dict[str, tuple[int, PluginFailure]]:
        """Each plugin whose hooks raised: how many times, and the last failure."""
        with self._lock:
            return {
                name: (count, self._last_failure[name])
                for name, count in self.failure_count.items()
                if name in self._last_failure
            }

    def slow_hooks(self) -> dict[str, int]:
        """Each plugin with hook calls slower than ``slow_hook_s``: how many since start."""
        with self._lock:
            return dict(self._slow_count)

    def call_function(self, qualified_name: str) -> CallFunction | None:
        """The call function exported as ``plugin.Function`` (no parentheses), or None."""
        return self._call_functions.get(qualified_name)

    def call_function_names(self) -> list[str]:
        return sorted(self._call_functions)

    # ----------------------------------------------------------------- live changes

    def reconfigure(self, settings: Settings) -> list[PluginFailure]:
        """New, validated settings while running: the host (and plugins started from now on)
        use ``settings``, and every loaded plugin with a ``reconfigure(settings)`` method is
        given them (see :mod:`aliecs_integration.plugin`). A plugin whose ``reconfigure``
        raises keeps its old settings; its failure is logged and returned. Plugins named or no
        longer named in ``integrationPlugins`` are started and stopped by the caller
        (:meth:`start_plugin`, :meth:`stop_plugin`)."""
        with self._admin_lock:
            self.settings = settings
            failures: list[PluginFailure] = []
            for name, plugin in list(self.pm.list_name_plugin()):
                method = getattr(plugin, "reconfigure", None)
                if not callable(method):
                    continue
                try:
                    method(settings)
                except Exception as exc:
                    failures.append(self._record_failure(name, "reconfigure", exc))
            return failures

    def missing_setting(self, name: str, settings: Settings) -> str | None:
        """The ``endpoint_setting`` that loaded plugin ``name`` needs and ``settings`` lack
        (a plugin that needs one is not loaded without it, see :meth:`start`); None when it
        needs none, has it, or is not loaded."""
        plugin = self.pm.get_plugin(name)
        key = getattr(plugin, "endpoint_setting", None) if plugin is not None else None
        if isinstance(key, str) and key and settings.get(key) in (None, ""):
            return key
        return None

    def start_plugin(self, name: str) -> PluginStatus:
        """Load and start one more plugin while running (it was just named in
        ``integrationPlugins``), with the current settings: the same loading rules as
        :meth:`start`, then its call functions become available and its ``on_host_start``
        runs. Never raises because of the plugin: the returned status says whether it loaded
        and why not. A plugin already loaded is left as it is."""
        with self._admin_lock:
            if self.pm.get_plugin(name) is not None:
                return self._statuses[name]
            discovered = self._discover()
            if name in discovered:
                self._load_entry_point(name, discovered[name])
            elif name in self._extra:
                self._instantiate(name, self._extra[name], origin="registered in-process")
            else:
                self._refuse(name, f"no installed plugin provides '{name}' (entry-point group "
                                   f"{ENTRY_POINT_GROUP})")
            if self.pm.get_plugin(name) is None:
                return self._statuses[name]
            self._collect_call_functions(only=name)
            self._collect_variable_defaults()
            event = HostStartEvent(plugin_names=tuple(self.plugin_names()),
                                   framework_id=self.instance_id, listing=False)
            self._fire_each("on_host_start", lambda: event, only=name)
            log.info("plugin '%s' started while running", name)
            return self._statuses[name]

    def stop_plugin(self, name: str, timeout_s: float = 10.0) -> HostStopReport:
        """Stop one plugin while running (it is no longer named in ``integrationPlugins``):
        its call functions disappear first (a call naming one then fails as an unknown
        function), then it is flushed and its ``on_host_stop`` runs, all within ``timeout_s``,
        and it is unregistered. Returns its failures and final delivery report (empty when it
        was not loaded). Raises :class:`PluginError` for a plugin that is always loaded."""
        if name in ALWAYS_ON:
            raise PluginError(f"plugin '{name}' is always loaded and cannot be stopped alone")
        with self._admin_lock:
            plugin = self.pm.get_plugin(name)
            if plugin is None:
                return HostStopReport([], {})
            self._call_functions = {
                k: v for k, v in self._call_functions.items() if not k.startswith(f"{name}.")
            }
            deadline = time.monotonic() + max(0.0, timeout_s)
            self._ask(plugin, name, "flush", None, timeout_s)
            failures = self._fire_each(
                "on_host_stop",
                lambda: HostStopEvent(timeout_s=max(0.0, deadline - time.monotonic())),
                only=name)
            deliveries: dict[str, DeliveryReport] = {}
            report = self._ask(plugin, name, "delivery_report", None)
            if isinstance(report, DeliveryReport):
                deliveries[name] = report
            self.pm.unregister(plugin, name=name)
            self._rebuild_dispatch()
            self._collect_variable_defaults()
            status = self._statuses.get(name) or PluginStatus(name, name, False)
            self._statuses[name] = attrs.evolve(status, loaded=False,
                                                reason="not named in integrationPlugins")
            log.info("plugin '%s' stopped while running", name)
            return HostStopReport(failures, deliveries)

    # ----------------------------------------------------------------- listing and stopping

    def plugin_names(self) -> list[str]:
        """Names of the loaded plugins, in registration order."""
        return [name for name, _ in self.pm.list_name_plugin()]

    def plugin(self, name: str) -> object | None:
        """The loaded plugin object registered as ``name``, or None."""
        return self.pm.get_plugin(name)

    def list_plugins(self) -> list[PluginStatus]:
        """Every discovered or requested plugin, loaded or not, with endpoint and state."""
        result = []
        for name, status in sorted(self._statuses.items()):
            plugin = self.pm.get_plugin(name) if status.loaded else None
            if plugin is not None:
                status = attrs.evolve(status, endpoint=self._ask(plugin, name, "endpoint", ""),
                                      state=self._state_of(plugin, name))
            result.append(status)
        return result

    def _state_of(self, plugin: object, name: str) -> str:
        state = self._ask(plugin, name, "connection_state", ConnectionState.UNKNOWN)
        return state.value if isinstance(state, ConnectionState) else str(state)

    def _ask(self, plugin: object, name: str, method: str, default: Any, *args: Any) -> Any:
        attr = getattr(plugin, method, None)
        if attr is None:
            return default
        try:
            return attr(*args) if callable(attr) else attr
        except Exception as exc:
            log.warning("plugin '%s': %s() raised %r", name, method, exc)
            return default

    def flush(self, timeout_s: float) -> dict[str, DeliveryReport]:
        """Ask every loaded plugin that delivers events to flush, all within one ``timeout_s``
        deadline; returns each one's :class:`DeliveryReport` by plugin name. Never raises
        because of a plugin (a failing one is logged and left out)."""
        deadline = time.monotonic() + timeout_s
        reports: dict[str, DeliveryReport] = {}
        for name, plugin in self.pm.list_name_plugin():
            left = max(0.0, deadline - time.monotonic())
            report = self._ask(plugin, name, "flush", None, left)
            if isinstance(report, DeliveryReport):
                reports[name] = report
        return reports

    def metrics(self) -> dict[str, MetricsSnapshot]:
        """Each loaded plugin's per-topic counts (plugins that keep some), by plugin name."""
        found: dict[str, MetricsSnapshot] = {}
        for name, plugin in self.pm.list_name_plugin():
            snapshot = self._ask(plugin, name, "metrics_snapshot", None)
            if isinstance(snapshot, MetricsSnapshot):
                found[name] = snapshot
        return found

    def spool_stats(self) -> dict[str, dict[str, int]]:
        """Each loaded plugin's on-disk spool (plugins that have one on), by plugin name:
        ``entries``, ``bytes``, ``replayed``, ``trimmed`` (see ``Plugin.spool_stats``)."""
        found: dict[str, dict[str, int]] = {}
        for name, plugin in self.pm.list_name_plugin():
            stats = self._ask(plugin, name, "spool_stats", None)
            if isinstance(stats, Mapping):
                found[name] = {k: int(v) for k, v in stats.items() if isinstance(v, int)}
        return found

    def stop(self, timeout_s: float = 10.0) -> HostStopReport:
        """Fire ``on_host_stop`` (plugins flush, all within one ``timeout_s`` deadline: each
        plugin gets what the ones before it left), collect each plugin's final delivery
        report, and unregister all plugins. Never raises because of a plugin."""
        if not self._started:
            return HostStopReport([], {})
        deadline = time.monotonic() + max(0.0, timeout_s)
        failures = self._fire_each(
            "on_host_stop", lambda: HostStopEvent(timeout_s=max(0.0, deadline - time.monotonic())))
        deliveries: dict[str, DeliveryReport] = {}
        for name, plugin in list(self.pm.list_name_plugin()):
            report = self._ask(plugin, name, "delivery_report", None)
            if isinstance(report, DeliveryReport):
                deliveries[name] = report
            self.pm.unregister(plugin, name=name)
        self._rebuild_dispatch()
        self._call_functions.clear()
        self._started = False
        return HostStopReport(failures, deliveries)
