"""``DeliveryTracker``: what the Kafka client reports back to the publisher (delivery reports,
statistics, error events) turned into metrics, the connection state and rate-limited logs.

Two ways of counting acknowledged messages, chosen by
:meth:`~aliecs_integration.settings.producer.ProducerConfig.counts_from_statistics`:

- idempotence on (the default): librdkafka reports only failed deliveries (one by one, with
  topic and reason: :meth:`DeliveryTracker.on_delivery`), and every
  ``statistics.interval.ms`` its statistics (:meth:`DeliveryTracker.on_stats`). The
  idempotent producer numbers the messages of each partition 1, 2, 3... in the order they
  are queued and reports the last acknowledged number (``acked_msgid``): a topic's
  acknowledged count is the sum over its partitions, less its failures served so far
  (librdkafka serves a failure before any statistics that count past it). No Python code
  runs per acknowledged message. Between two statistics the count lags (it is a lower
  bound); the publisher makes it exact whenever nothing is outstanding (after each flush,
  at close, and when idle; see :mod:`aliecs_integration.publish.publisher`).
- idempotence off: every delivery is reported and counted (:meth:`DeliveryTracker.on_delivery`
  kept lean: two method calls when the latency is not sampled, see
  :mod:`aliecs_integration.publish.metrics`).
"""

from __future__ import annotations

import collections
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from confluent_kafka import KafkaError

from aliecs_integration.log_limits import RateLimitedLog
from aliecs_integration.publish.metrics import Metrics
from aliecs_integration.records import ConnectionState

_READY = ConnectionState.READY
_DOWN = frozenset({KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN, KafkaError._RESOLVE})
_PURGED = frozenset({KafkaError._PURGE_QUEUE, KafkaError._PURGE_INFLIGHT})
_CONNECTED = frozenset({"UP", "UPDATE"})
"""librdkafka's statistics: the states of a broker it is connected to."""
MISSING_TOPIC = frozenset(
    {KafkaError._UNKNOWN_PARTITION, KafkaError._UNKNOWN_TOPIC, KafkaError.UNKNOWN_TOPIC_OR_PART}
)
"""Delivery errors of a topic deleted under the producer: the message can go again once the
topic is re-created (see ``on_missing_topic``)."""


class DeliveryTracker:
    """confluent-kafka's ``on_delivery`` (:meth:`on_delivery`, :meth:`on_delivery_since`)
    and ``error_cb`` (:meth:`on_error`) for one producer named ``name``; messages go to
    ``logger``. They never raise.

    ``state`` becomes READY with each delivery (or statistics showing new acknowledgements
    while the leader is connected) and TRANSIENT_FAILURE after a transport or fatal error (the
    publisher sets it too).
    ``purged`` counts the messages purged at close: abandoned, not failed (per topic:
    :attr:`purged_by_topic`); :attr:`failed_by_topic` counts the failures served.
    """

    def __init__(
        self,
        metrics: Metrics,
        name: str,
        logger: logging.Logger,
        on_missing_topic: Callable[[Any], bool] | None = None,
    ) -> None:
        self.name, self.logger = name, logger
        self._on_missing_topic = on_missing_topic
        self.state = ConnectionState.CONNECTING
        self.purged = 0
        self._count_sent, self._sample_latency = metrics.count_sent, metrics.sample_latency
        self._record_failed = metrics.record_failed
        self._metrics = metrics
        self.failed_by_topic: collections.Counter[str] = collections.Counter()
        self.purged_by_topic: collections.Counter[str] = collections.Counter()
        self.retaken_by_topic: collections.Counter[str] = collections.Counter()
        self._acked: dict[str, int] = {}  # per topic: sum of acked_msgid in the last stats
        self._lock = threading.Lock()
        self._failures = RateLimitedLog(logger, logging.ERROR)
        self._errors = RateLimitedLog(logger, logging.WARNING)

    def on_delivery(self, err: KafkaError | None, msg: Any) -> None:
        """The delivery report of a message produced at once (latency: librdkafka's)."""
        if err is None:
            topic = msg.topic()
            if self._count_sent(topic):
                self._sample_latency(topic, msg.latency() or 0.0)
            self.state = _READY
        else:
            self._on_failure(err, msg.topic(), msg)

    def on_delivery_since(self, queued: float, err: KafkaError | None, msg: Any) -> None:
        """The delivery report of a message held by the publisher since ``queued``
        (``time.monotonic()``); bind ``queued`` with ``functools.partial``."""
        if err is None:
            topic = msg.topic()
            if self._count_sent(topic):
                self._sample_latency(topic, time.monotonic() - queued)
            self.state = _READY
        else:
            self._on_failure(err, msg.topic(), msg)

    def on_stats(self, stats_json: str) -> None:
        """librdkafka's statistics (``stats_cb``): raise each topic's acknowledged count to
        the sum of its partitions' ``acked_msgid`` less its failures, purges and messages
        taken back for a deleted topic served so far; record the latency of the window (see
        :func:`window_latency`)."""
        try:
            stats = json.loads(stats_json)
            topics: Mapping[str, Any] = stats.get("topics") or {}
            brokers = {b.get("nodeid"): b for b in (stats.get("brokers") or {}).values()}
            totals: dict[str, int] = {}
            progressed = []
            for topic, entry in topics.items():
                acked, leader = 0, None
                for pid, part in (entry.get("partitions") or {}).items():
                    if pid != "-1":
                        acked += int(part.get("acked_msgid", 0))
                        leader = part.get("leader", leader)
                if acked > self._acked.get(topic, 0):
                    self._acked[topic] = acked
                    progressed.append((topic, leader))
                with self._lock:
                    lost = (self.failed_by_topic[topic] + self.purged_by_topic[topic]
                            + self.retaken_by_topic[topic])
                totals[topic] = acked - lost
        except (ValueError, TypeError, AttributeError) as exc:  # never raise into the client
            self._errors.note("%s: unreadable librdkafka statistics: %s", self.name, exc)
            return
        self._metrics.raise_sent(totals)
        if any(brokers.get(leader, {}).get("state") in _CONNECTED for _, leader in progressed):
            # acknowledgements counted up to the window's end, a leader connected at its
            # end: reachable now (acknowledged just before an outage is not enough: an error
            # event saying all brokers are down comes once, and would be overridden)
            self.state = _READY
        for topic, leader in progressed:
            window = window_latency(brokers.get(leader))
            if window is not None:
                self._metrics.record_latency_window(topic, *window)

    def on_error(self, err: KafkaError) -> None:
        """A client error event: fatal ones logged at once, the others rate-limited."""
        if err.code() in _DOWN or err.fatal():
            self.state = ConnectionState.TRANSIENT_FAILURE
        if err.fatal():
            self.logger.error("%s: fatal Kafka client error: %s", self.name, err.str())
        else:
            self._errors.note("%s: Kafka client error: %s", self.name, err.str())

    def _on_failure(self, err: KafkaError, topic: str, msg: Any = None) -> None:
        if (
            err.code() in MISSING_TOPIC
            and self._on_missing_topic is not None
            and msg is not None
            and self._on_missing_topic(msg)
        ):
            with self._lock:
                self.retaken_by_topic[topic] += 1
            return  # taken back: it goes again once the topic is re-created
        if err.code() in _PURGED:
            with self._lock:
                self.purged += 1
                self.purged_by_topic[topic] += 1
            return
        with self._lock:
            self.failed_by_topic[topic] += 1
        self._record_failed(topic)
        self._failures.note("%s: delivery to %s failed: %s", self.name, topic, err.str())


_LATENCY_PARTS = ("int_latency", "outbuf_latency", "rtt")


def window_latency(broker: Mapping[str, Any] | None) -> tuple[float, float, float] | None:
    """(p50, p99, max) in seconds of a produce request's path through ``broker`` (librdkafka's
    statistics of it) over the last window: time queued in the client, waiting in the output
    buffer, and the round trip, each summed; None when the window saw no request. An
    estimate of the delivery latency of the messages that broker leads, per window."""
    if not broker:
        return None
    rtt = broker.get("rtt") or {}
    if not rtt.get("cnt"):
        return None
    parts = [broker.get(name) or {} for name in _LATENCY_PARTS]
    return tuple(sum(float(p.get(q, 0)) for p in parts) / 1e6 for q in ("p50", "p99", "max"))  # type: ignore[return-value]
