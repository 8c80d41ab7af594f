"""The optional base class of plugins, and what the host reads from a plugin object.

A plugin is registered from an entry point in the group ``aliecs_integration.plugins``; the
entry point's name is the plugin's name (the namespace of its call functions). The object it
points to is either a module with ``@hookimpl`` functions, or a class (any callable) that the
host instantiates with a :class:`~aliecs_integration.records.PluginContext`.

Attributes the host reads, all optional:

- ``pretty_name`` (str): shown in listings; defaults to the name.
- ``endpoint_setting`` (str): a settings key that must be present for the plugin to load
  (``kafkaEndpoint`` for ``kafka``); read before instantiation, on the class or module.
- ``settings_keys`` (tuple of str): top-level settings keys the plugin reads. Settings refuse a
  key that differs from a known one only by case or one letter (a typo) unless a plugin
  declares it here (or as its ``endpoint_setting``).
- ``variable_defaults`` (mapping of str to str): lowest-precedence defaults of environment
  variables the plugin reads (the legacy ``kafka`` plugin: ``kafka_enabled: false``); collected
  by :meth:`PluginHost.variable_defaults <aliecs_integration.host.PluginHost.variable_defaults>`.
- ``endpoint()`` -> str: where the plugin connects to.
- ``connection_state()`` -> :class:`~aliecs_integration.records.ConnectionState`.

Methods the host calls on a plugin that delivers events somewhere, all optional (the way back
from a plugin to its host; nobody reads a plugin's attributes):

- ``flush(timeout_s)`` -> :class:`~aliecs_integration.records.DeliveryReport` or None: wait up to
  ``timeout_s`` for what was handed over to be delivered (:meth:`PluginHost.flush
  <aliecs_integration.host.PluginHost.flush>`).
- ``delivery_report()`` -> ``DeliveryReport`` or None: the totals so far; final once
  ``on_host_stop`` returned (:meth:`PluginHost.stop <aliecs_integration.host.PluginHost.stop>`).
- ``metrics_snapshot()`` -> :class:`~aliecs_integration.publish.metrics.MetricsSnapshot` or None:
  per-topic counts (:meth:`PluginHost.metrics <aliecs_integration.host.PluginHost.metrics>`).
- ``reconfigure(settings)``: new, validated settings while running (live settings,
  :meth:`PluginHost.reconfigure <aliecs_integration.host.PluginHost.reconfigure>`). The
  :class:`Plugin` default makes :attr:`Plugin.settings` return them; a plugin that keeps
  something built from its settings (a producer, a connection) overrides it, rebuilds that
  without losing what it holds, and raises to refuse the change (it keeps its old settings).
  A plugin without the method keeps the settings it was created with.
- ``spool_stats()`` -> mapping of str to int, or None: the on-disk spool's ``entries``,
  ``bytes``, ``replayed`` and ``trimmed`` when the plugin has one on
  (:meth:`PluginHost.spool_stats <aliecs_integration.host.PluginHost.spool_stats>`).

A plugin that delivers nothing answers None (the :class:`Plugin` defaults) or lacks the method.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar, TypeVar

import attrs

from aliecs_integration.publish.metrics import MetricsSnapshot
from aliecs_integration.records import ConnectionState, DeliveryReport, PluginContext
from aliecs_integration.settings.core import Settings


class Plugin:
    """Convenience base class: keeps the context, reads the endpoint from the settings."""

    pretty_name: ClassVar[str] = ""
    endpoint_setting: ClassVar[str | None] = None
    settings_keys: ClassVar[tuple[str, ...]] = ()
    variable_defaults: ClassVar[Mapping[str, str]] = {}

    def __init__(self, context: PluginContext) -> None:
        self.context = context

    @property
    def name(self) -> str:
        return self.context.name

    @property
    def settings(self) -> Settings:
        return self.context.settings

    def endpoint(self) -> str:
        if self.endpoint_setting is None:
            return ""
        value = self.settings.get(self.endpoint_setting)
        return "" if value is None else str(value)

    def connection_state(self) -> ConnectionState:
        return ConnectionState.UNKNOWN

    def flush(self, timeout_s: float) -> DeliveryReport | None:
        """Wait up to ``timeout_s`` for delivery; None: this plugin delivers nothing."""
        return None

    def delivery_report(self) -> DeliveryReport | None:
        """Delivery totals so far (final after ``on_host_stop``); None: delivers nothing."""
        return None

    def metrics_snapshot(self) -> MetricsSnapshot | None:
        """Per-topic counts; None: this plugin has none."""
        return None

    def reconfigure(self, settings: Settings) -> None:
        """New settings while running: from now on :attr:`settings` returns ``settings``."""
        self.context = attrs.evolve(self.context, settings=settings)

    def spool_stats(self) -> Mapping[str, int] | None:
        """The on-disk spool's counts; None: this plugin has no spool on."""
        return None


_NONBLOCKING = "__aliecs_nonblocking__"

F = TypeVar("F", bound=Callable[..., Any])


def nonblocking(function: F) -> F:
    """Mark a call function as one that returns promptly and never waits on I/O (for example
    it only hands a message to the publisher's bounded queue).

    The environment manager runs such a function on the thread driving the environment instead
    of handing it to a call worker, which saves a thread round trip per call. It cannot be
    interrupted there: its timeout is checked when it returns, and an overrun is reported as
    DONE_TIMEOUT.
    """
    setattr(function, _NONBLOCKING, True)
    return function


def is_nonblocking(function: object) -> bool:
    """Whether ``function`` (or the function behind a bound method) is :func:`nonblocking`."""
    return bool(getattr(function, _NONBLOCKING, False))
