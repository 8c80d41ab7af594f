"""Reliability suite: failure injection against the real servers, counting events end to end.

Shared helpers: a started host publishing under a test's topic root, numbered events through the
host path, counting what came back. Settings and reading topics back: ``tests/kafka_helpers.py``;
stopping and starting the broker: the ``kafka_broker`` and ``kafka_cluster`` fixtures.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterable
from typing import Any

from aliecs_integration import hookspecs
from aliecs_integration.host import PluginHost
from aliecs_integration.pb import events_pb2
from aliecs_integration.publish.metrics import MetricsSnapshot
from aliecs_integration.records import DeliveryReport, IntegratedServiceEvent, OpStatus
from tests.kafka_helpers import core_kafka_settings

SERVICE = "reliability"
"""Integrated-service name of the numbered events (topic ``<root>.integrated_service.<it>``)."""


def started_host(bootstrap: str, root: str, **producer: Any) -> PluginHost:
    """A started host whose only plugin is core-kafka, per :func:`core_kafka_settings`."""
    host = PluginHost(core_kafka_settings(bootstrap, root, **producer))
    host.start()
    assert [p.name for p in host.list_plugins() if p.loaded] == ["core-kafka"], (
        "core-kafka did not load: is the package installed (pip install -e .)?")
    return host


def flush_core(host: PluginHost, timeout_s: float) -> DeliveryReport:
    """Flush the host's plugins; the core-kafka plugin's delivery report."""
    return host.flush(timeout_s)["core-kafka"]


def core_metrics(host: PluginHost) -> MetricsSnapshot:
    """The core-kafka plugin's per-topic counts, through the host."""
    return host.metrics()["core-kafka"]


def numbered(i: int, environments: int = 8) -> IntegratedServiceEvent:
    """Event number ``i``: its payload is the number, its key one of ``environments`` ids."""
    return IntegratedServiceEvent(service=SERVICE, environment_id=f"env{i % environments}",
                                  operation_name="count()", operation_status=OpStatus.DONE_OK,
                                  payload=str(i))


def fire_numbered(host: PluginHost, numbers: Iterable[int]) -> None:
    """Fire each numbered event through the host; a hook failure fails the test."""
    for i in numbers:
        failures = host.fire(hookspecs.on_integrated_service_event, numbered(i))
        assert not failures, failures


class PacedStream(threading.Thread):
    """Fires numbered events ``0 .. total-1`` through the host at ``pace`` events/s, in chunks,
    on its own thread; ``errors`` holds what it raised (a failed hook fails the test)."""

    def __init__(self, host: PluginHost, total: int, pace: float, chunk: int) -> None:
        super().__init__(name="numbered-stream")
        self.host, self.total, self.pace, self.chunk = host, total, pace, chunk
        self.errors: list[BaseException] = []

    def run(self) -> None:
        try:
            started = time.monotonic()
            for first in range(0, self.total, self.chunk):
                fire_numbered(self.host, range(first, min(first + self.chunk, self.total)))
                ahead = started + (first + self.chunk) / self.pace - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
        except BaseException as exc:
            self.errors.append(exc)


def numbers_in(messages: Iterable[Any]) -> list[int]:
    """The payload numbers of numbered events, in topic order."""
    return [int(events_pb2.Event.FromString(m.value()).integratedServiceEvent.payload)
            for m in messages]


def lost_and_duplicated(numbers: list[int], total: int) -> tuple[list[int], dict[int, int]]:
    """Numbers of ``range(total)`` never seen, and those seen more than once (with counts)."""
    counts = Counter(numbers)
    lost = [i for i in range(total) if i not in counts]
    return lost, {i: n for i, n in counts.items() if n > 1}
