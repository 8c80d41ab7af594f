"""``DeliveryTracker``: what the Kafka client reports back to the publisher (a delivery report
per message, error events) turned into metrics, the connection state and rate-limited logs.

The delivery report runs once per message on the thread polling the producer: it is kept
lean (two method calls when the latency is not sampled, see
:mod:`aliecs_integration.publish.metrics`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError

from aliecs_integration.log_limits import RateLimitedLog
from aliecs_integration.publish.metrics import Metrics
from aliecs_integration.records import ConnectionState

_READY = ConnectionState.READY
_DOWN = frozenset({KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN, KafkaError._RESOLVE})
_PURGED = frozenset({KafkaError._PURGE_QUEUE, KafkaError._PURGE_INFLIGHT})
MISSING_TOPIC = frozenset(
    {KafkaError._UNKNOWN_PARTITION, KafkaError._UNKNOWN_TOPIC, KafkaError.UNKNOWN_TOPIC_OR_PART}
)
"""Delivery errors of a topic deleted under the producer: the message can go again once the
topic is re-created (see ``on_missing_topic``)."""


class DeliveryTracker:
    """confluent-kafka's ``on_delivery`` (:meth:`on_delivery`, :meth:`on_delivery_since`)
    and ``error_cb`` (:meth:`on_error`) for one producer named ``name``; messages go to
    ``logger``. They never raise.

    ``state`` becomes READY with each delivery and TRANSIENT_FAILURE after a transport or
    fatal error (the publisher sets it too). ``purged`` counts the messages purged at close:
    abandoned, not failed.
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
            return  # taken back: it goes again once the topic is re-created
        if err.code() in _PURGED:
            with self._lock:
                self.purged += 1
            return
        self._record_failed(topic)
        self._failures.note("%s: delivery to %s failed: %s", self.name, topic, err.str())
