"""The built-in plugins, installed as the package ``aliecs_integration_plugins``.

- ``core_kafka``: the always-on core-kafka producer (entry point ``core-kafka``).
- ``kafka``: the opt-in legacy kafka plugin (entry point ``kafka``).
- ``services``: simulated integrated services (entry points ``trg``, ``dcs``, ``odc``,
  ``ddsched``), opt-in like any plugin.
"""
