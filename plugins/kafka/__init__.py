"""The legacy ``kafka`` plugin (opt-in): state notifications and the active-runs list.

Entry point ``kafka = aliecs_integration_plugins.kafka:KafkaPlugin``; see :mod:`.plugin`.
"""

from .plugin import KafkaPlugin

__all__ = ["KafkaPlugin"]
