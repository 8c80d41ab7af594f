"""The composition root of a scenario run: settings -> plugin host -> environment manager ->
scenario -> flush -> stop, with what it did as an :class:`EngineOutcome`. Used by ``run`` and the
demo; raises only :mod:`aliecs_integration.errors` exceptions."""

from __future__ import annotations

import time
from collections.abc import Callable

import attrs

from aliecs_integration.engine.manager import EnvironmentManager
from aliecs_integration.engine.run_numbers import RunNumberStore
from aliecs_integration.errors import PluginError
from aliecs_integration.host import PluginHost, PluginStatus
from aliecs_integration.monitoring.collector import WatchSource, static_watch_status
from aliecs_integration.monitoring.endpoint import MonitoringEndpoint, start_monitoring
from aliecs_integration.publish.metrics import MetricsSnapshot
from aliecs_integration.scenario.model import Scenario
from aliecs_integration.scenario.runner import (
    ProgressCallback,
    ScenarioResult,
    ScenarioRunner,
)
from aliecs_integration.settings.core import Settings

CORE_PLUGIN = "core-kafka"


@attrs.frozen
class EngineOutcome:
    """What :func:`run_scenario` did: the scenario's outcomes, the publisher's counts after the
    final flush (None when producing is off), and the plugins as listed before stopping."""

    result: ScenarioResult
    metrics: MetricsSnapshot | None
    plugins: tuple[PluginStatus, ...]
    elapsed_s: float
    hook_failures: tuple[str, ...] = ()
    """One line per plugin whose hooks raised: count and the last failure (an event a plugin
    refused is not delivered: the run did not go as expected)."""

    def missing_plugins(self, settings: Settings) -> list[str]:
        """``name: reason`` of each plugin the settings ask for that is not loaded."""
        return _missing(list(self.plugins), settings)


def _missing(plugins: list[PluginStatus], settings: Settings) -> list[str]:
    wanted = {CORE_PLUGIN, *settings.integration_plugins}
    return [f"{p.name}: {p.reason}" for p in plugins if p.name in wanted and not p.loaded]


def run_scenario(
    settings: Settings,
    scenario: Scenario,
    *,
    run_numbers: RunNumberStore,
    on_progress: ProgressCallback | None = None,
    on_started: Callable[[list[PluginStatus]], None] | None = None,
    flush_timeout_s: float | None = None,
    require_plugins: bool = False,
    metrics_address: str | None = None,
    watch_status: WatchSource | None = None,
    on_monitoring: Callable[[str], None] | None = None,
) -> EngineOutcome:
    """Start the plugins, run ``scenario`` through an environment manager, flush, stop.

    ``flush_timeout_s`` (default: the settings' ``kafkaProducer.flushTimeoutSeconds``) is one
    deadline for the whole shutdown: the final flush and every plugin's ``on_host_stop``
    share it, also when the run is interrupted (SIGTERM), after the environment threads
    stopped.

    ``on_started`` sees the plugin list once the host started. With ``require_plugins``, a
    plugin the settings ask for (core-kafka, ``integrationPlugins``) that did not load raises
    :class:`~aliecs_integration.errors.PluginError` before any environment is created. Never
    raises because of a scenario action (outcomes are in the result); plugin failures are
    reported by the host.

    ``metrics_address`` (HOST:PORT; None or '' for none) serves ``/metrics`` and ``/healthz``
    from before the first environment until the plugins stopped, reading ``watch_status``
    (default: settings read once from ``settings.source``); ``on_monitoring`` is told where it
    listens. A failure to listen raises
    :class:`~aliecs_integration.monitoring.endpoint.EndpointError` before any environment is
    created.
    """
    started = time.monotonic()
    budget = settings.producer.flush_timeout_s if flush_timeout_s is None else flush_timeout_s
    deadline: list[float] = []

    def left() -> float:
        if not deadline:  # the shutdown starts now
            deadline.append(time.monotonic() + budget)
        return max(0.0, deadline[0] - time.monotonic())

    host = PluginHost(settings)
    host.start()
    monitoring: MonitoringEndpoint | None = None
    try:
        if on_started is not None:
            on_started(host.list_plugins())
        missing = _missing(host.list_plugins(), settings)
        if require_plugins and missing:
            raise PluginError(f"plugin(s) not loaded: {'; '.join(missing)}")
        manager = EnvironmentManager(host, settings_runtime_vars=settings.runtime_vars,
                                     run_numbers=run_numbers,
                                     variable_defaults=host.variable_defaults())
        try:
            monitoring = start_monitoring(metrics_address, host, manager,
                                          watch_status or static_watch_status(settings.source))
            if monitoring is not None and on_monitoring is not None:
                on_monitoring(monitoring.address)
            result = ScenarioRunner(manager, on_progress=on_progress).run(scenario)
        finally:
            manager.close()
        host.flush(left())
        metrics = host.metrics().get(CORE_PLUGIN) if settings.producing else None
        plugins = tuple(host.list_plugins())
    finally:
        host.stop(timeout_s=left())
        if monitoring is not None:
            monitoring.stop()
    failed = tuple(
        f"plugin {name}: {count} hook call(s) failed, the last: {last.hook}: "
        f"{_one_line(last.error)}"
        for name, (count, last) in sorted(host.failures().items())
    )
    return EngineOutcome(result, metrics, plugins, time.monotonic() - started, failed)


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 300 else text[:300] + "..."
