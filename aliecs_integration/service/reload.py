"""Applying new, valid settings to the running service without stopping its environments.

:func:`apply_settings` is what the settings watch
(:class:`~aliecs_integration.settings.watch.SettingsWatcher`) calls in ``serve``, in this order:

1. plugins no longer named in ``integrationPlugins`` are flushed and stopped; their call
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


def apply_settings(host: PluginHost, manager: EnvironmentManager, new: Settings, *,
                   flush_timeout_s: float = 10.0) -> ApplyReport:
    """Apply ``new`` (validated) to ``host`` and ``manager`` (see the module doc). Never raises
    because of a plugin: what went wrong is in the report and logged."""
    old = set(host.settings.integration_plugins) | set(ALWAYS_ON)
    wanted = set(new.integration_plugins) | set(ALWAYS_ON)
    problems: list[str] = []
    stopped: list[str] = []
    for name in sorted(old - wanted):
        report = host.stop_plugin(name, flush_timeout_s)
        stopped.append(name)
        problems.extend(str(f) for f in report.failures)
        for plugin, delivery in report.deliveries.items():
            if delivery.undelivered or delivery.failed:
                problems.append(f"plugin '{plugin}' stopped with {delivery.undelivered} "
                                f"undelivered and {delivery.failed} failed event(s)")
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
