"""aliecs-integration: publish an experiment control system's environment and run events to Kafka.

Public entry points: :class:`aliecs_integration.host.PluginHost`,
:class:`aliecs_integration.engine.manager.EnvironmentManager`, the hook markers in
:mod:`aliecs_integration.hookspecs` and the records in :mod:`aliecs_integration.records`.
"""

__version__ = "0.1.0"
