"""Applying new, valid settings to the running service without stopping its environments.

:func:`apply_settings` is what the settings watch
(:class:`~aliecs_integration.settings.watch.SettingsWatcher`) calls in ``serve``, in this order:

1. plugins no longer named in ``integrationPlugins``, or whose endpoint setting (e.g. the
   legacy plugin's ``kafkaEndpoint``) is now missing, are flushed and stopped; their call
   functions disappear first, so a call naming one fails as an unknown function;
2. every loaded plugin is given the new settings (``reconfigure``): core-kafka and the legacy
   ``kafka`` plugin switch to a new producer when ``kafkaEndpoints``/``kafkaEndpoint``,
   ``kafkaProducer`` or ``enableKafka`` changed (the old one is flushed and closed; nothing is
   lost or sent twice, see :mod:`aliecs_integration.publish.switch`);
3. plugins newly named are started;
4. the runtime variables (and the loaded plugins' variable defaults) apply to the next calls
   of every environment and to new environments.
"""

from __future__ import annotations

import logging

import attrs

from aliecs_integration.engine.manager import EnvironmentManager
from aliecs_integration.host import ALWAYS_ON, PluginHost
from aliecs_integration.settings.core import Settings

log = logging.getLogger(__name__)


@attrs.frozen
class ApplyReport:
    """What :func:`apply_settings` did: plugins ``started`` and ``stopped``, and
    ``problems`` (a plugin that did not load or refused the new settings), each a sentence."""

    started: tuple[str, ...] = ()
    stopped: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()


def _stop(host: PluginHost, name: str, timeout_s: float, problems: list[str]) -> list[str]:
    """Stop ``name`` if loaded; its name in a list when it was."""
    if host.plugin(name) is None:
        return []
    report = host.stop_plugin(name, timeout_s)
    problems.extend(str(f) for f in report.failures)
    for plugin, delivery in report.deliveries.items():
        if delivery.undelivered or delivery.failed:
            problems.append(f"plugin '{plugin}' stopped with {delivery.undelivered} "
                            f"undelivered and {delivery.failed} failed event(s)")
    return [name]


def apply_settings(host: PluginHost, manager: EnvironmentManager, new: Settings, *,
                   flush_timeout_s: float = 10.0) -> ApplyReport:
    """Apply ``new`` (validated) to ``host`` and ``manager`` (see the module doc). Never raises
    because of a plugin: what went wrong is in the report and logged."""
    old = set(host.settings.integration_plugins) | set(ALWAYS_ON)
    wanted = set(new.integration_plugins) | set(ALWAYS_ON)
    problems: list[str] = []
    stopped: list[str] = []
    for name in sorted(old & wanted):
        missing = host.missing_setting(name, new)
        if missing is not None:  # as at start: not loaded without its endpoint setting
            problems.append(f"plugin '{name}' stopped: setting '{missing}' is missing (needed "
                            f"by plugin '{name}')")
            old.discard(name)
            wanted.discard(name)
            stopped.extend(_stop(host, name, flush_timeout_s, problems))
    for name in sorted(old - wanted):
        stopped.extend(_stop(host, name, flush_timeout_s, problems))
    problems.extend(str(f) for f in host.reconfigure(new))
    started: list[str] = []
    for name in sorted(wanted - old):
        status = host.start_plugin(name)
        if status.loaded:
            started.append(name)
        else:
            problems.append(f"plugin '{name}' not started: {status.reason}")
    manager.set_defaults(new.runtime_vars, host.variable_defaults())
    for problem in problems:
        log.error("applying new settings: %s", problem)
    return ApplyReport(tuple(started), tuple(stopped), tuple(problems))
