"""Health of the running process: is the producer connected, is the settings source reachable.

:func:`check_health` judges from what the plugin host lists and what the settings watch says;
the HTTP endpoint answers ``/healthz`` with it (200 when healthy, 503 otherwise).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import attrs

from aliecs_integration.host import PluginStatus
from aliecs_integration.records import ConnectionState
from aliecs_integration.settings.watch import WatchStatus

_CONNECTED = ConnectionState.READY.value
_NOT_PRODUCING = (ConnectionState.IDLE.value, ConnectionState.UNKNOWN.value)
"""Plugin states that say nothing about a producer: producing is off (IDLE) or the plugin does
not report a connection (UNKNOWN, e.g. the simulated services)."""


@attrs.frozen
class Health:
    """The verdict and its parts. ``producers``: each loaded plugin that produces, with its
    connection state; ``problems``: one line per unhealthy part (empty when healthy)."""

    producers: dict[str, str]
    settings: WatchStatus
    problems: tuple[str, ...]

    @property
    def healthy(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        """The ``/healthz`` body: ``status`` (``ok`` or ``unhealthy``), ``problems``, and each
        part with an ``ok`` flag."""
        producer_ok = all(state == _CONNECTED for state in self.producers.values())
        return {
            "status": "ok" if self.healthy else "unhealthy",
            "problems": list(self.problems),
            "producer": {"ok": producer_ok, "plugins": dict(self.producers)},
            "settings": {"ok": self.settings.reachable, "source": self.settings.source,
                         "last_error": self.settings.last_error},
        }


def check_health(plugins: Iterable[PluginStatus], watch: WatchStatus) -> Health:
    """Healthy when every loaded plugin that produces is READY (connected to its broker;
    none producing is healthy too) and the settings source answered its last read."""
    producers = {p.name: p.state for p in plugins if p.loaded and p.state not in _NOT_PRODUCING}
    problems = [f"producer of plugin {name} is not connected (state {state})"
                for name, state in sorted(producers.items()) if state != _CONNECTED]
    if not watch.reachable:
        why = f": {watch.last_error}" if watch.last_error else ""
        problems.append(f"settings source {watch.source} is not reachable{why}")
    return Health(producers, watch, tuple(problems))
