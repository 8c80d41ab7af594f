"""aliecs-integration: publish an experiment control system's environment and run events to
Kafka, through plugins.

This top level is the public API for plugin authors: everything a plugin needs is importable
from here, and only from here (``from aliecs_integration import hookimpl, Plugin``). The names
in ``__all__`` are kept stable; a test fails if a documented one disappears. The rest of the
package (``engine``, ``publish``, ``settings``, ``scenario``, ``cli``, ``host``) is the
framework's own machinery.

- Markers: :data:`hookimpl` (decorate hook implementations), :func:`nonblocking` (mark a call
  function the environment manager may run on its driving thread).
- :class:`Plugin`: optional base class; :class:`PluginContext`: what a plugin class receives.
- The records every hook receives as its ``event`` argument, the enums they use, and
  :class:`CallContext` / :data:`CallFunction` for call functions.
- :class:`DeliveryReport`: what a delivering plugin returns from ``flush``/``delivery_report``.
- Errors a plugin may raise or see: :class:`AliecsError` and its subclasses.
"""

from __future__ import annotations

import importlib.metadata

from aliecs_integration.errors import AliecsError, PluginError, PublishError, SettingsError
from aliecs_integration.hookspecs import hookimpl
from aliecs_integration.plugin import Plugin, nonblocking
from aliecs_integration.records import (
    CallContext,
    CallEvent,
    CallFunction,
    CallTraits,
    ConnectionState,
    CoreEvent,
    CoreEventKind,
    DeliveryReport,
    EnvironmentSnapshot,
    HostStartEvent,
    HostStopEvent,
    IntegratedServiceEvent,
    OpStatus,
    PluginContext,
    RoleEvent,
    RunEvent,
    StateChangeEvent,
    TaskEvent,
    TransitionStepEvent,
    User,
    WorkflowTemplate,
)

try:
    __version__ = importlib.metadata.version("aliecs-integration")
except importlib.metadata.PackageNotFoundError:  # imported from a source tree, not installed
    __version__ = "0+unknown"

__all__ = [
    "AliecsError",
    "CallContext",
    "CallEvent",
    "CallFunction",
    "CallTraits",
    "ConnectionState",
    "CoreEvent",
    "CoreEventKind",
    "DeliveryReport",
    "EnvironmentSnapshot",
    "HostStartEvent",
    "HostStopEvent",
    "IntegratedServiceEvent",
    "OpStatus",
    "Plugin",
    "PluginContext",
    "PluginError",
    "PublishError",
    "RoleEvent",
    "RunEvent",
    "SettingsError",
    "StateChangeEvent",
    "TaskEvent",
    "TransitionStepEvent",
    "User",
    "WorkflowTemplate",
    "__version__",
    "hookimpl",
    "nonblocking",
]
