"""Unit tests of aliecs_integration.publish.delivery_tracker: delivery reports and client errors
turned into metrics, the connection state and logs."""

from __future__ import annotations

import functools
import logging
import time

import pytest
from confluent_kafka import KafkaError

from aliecs_integration.publish.delivery_tracker import DeliveryTracker
from aliecs_integration.publish.metrics import Metrics
from aliecs_integration.records import ConnectionState


class Msg:
    def __init__(self, topic: str, latency: float | None = 0.004) -> None:
        self._topic, self._latency = topic, latency

    def topic(self) -> str:
        return self._topic

    def latency(self) -> float | None:
        return self._latency


def tracker(metrics: Metrics) -> DeliveryTracker:
    return DeliveryTracker(metrics, "pub", logging.getLogger("test.deliveries"))


def test_deliveries_are_counted_and_make_the_state_ready() -> None:
    metrics = Metrics(sample_every=1)
    t = tracker(metrics)
    assert t.state is ConnectionState.CONNECTING
    t.on_delivery(None, Msg("a"))
    t.on_delivery(None, Msg("a", latency=None))  # no latency known: 0
    held_since = functools.partial(t.on_delivery_since, time.monotonic() - 2.0)
    held_since(None, Msg("b", latency=0.001))  # latency from the time it was queued
    assert t.state is ConnectionState.READY
    snap = metrics.snapshot()
    assert (snap.topics["a"].sent, snap.topics["b"].sent) == (2, 1)
    assert snap.topics["a"].latency.max_s == 0.004
    assert 2.0 <= snap.topics["b"].latency.max_s < 3.0


def test_failures_are_counted_and_purges_are_not(caplog: pytest.LogCaptureFixture) -> None:
    metrics = Metrics()
    t = tracker(metrics)
    with caplog.at_level(logging.ERROR, logger="test.deliveries"):
        t.on_delivery(KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED), Msg("a"))
        t.on_delivery(KafkaError(KafkaError._PURGE_QUEUE), Msg("a"))
        t.on_delivery_since(0.0, KafkaError(KafkaError._PURGE_INFLIGHT), Msg("a"))
    assert metrics.snapshot().failed == 1 and t.purged == 2
    assert "pub: delivery to a failed" in caplog.text
    assert t.state is ConnectionState.CONNECTING


def test_client_errors_set_the_state_and_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    t = tracker(Metrics())
    with caplog.at_level(logging.WARNING, logger="test.deliveries"):
        t.on_error(KafkaError(KafkaError._MSG_TIMED_OUT))
        assert t.state is ConnectionState.CONNECTING  # not a transport error
        t.on_error(KafkaError(KafkaError._ALL_BROKERS_DOWN))
        assert t.state is ConnectionState.TRANSIENT_FAILURE
        t.state = ConnectionState.READY
        t.on_error(KafkaError(KafkaError._FATAL, fatal=True))
    assert t.state is ConnectionState.TRANSIENT_FAILURE
    assert "pub: Kafka client error" in caplog.text
    assert any(
        r.levelno == logging.ERROR and "fatal Kafka client error" in r.getMessage()
        for r in caplog.records
    )


def _stats(acked: int, broker_state: str) -> str:
    import json

    return json.dumps({
        "brokers": {"127.0.0.1:9092/1": {"nodeid": 1, "state": broker_state}},
        "topics": {"t": {"partitions": {"0": {"acked_msgid": acked, "leader": 1},
                                        "-1": {"acked_msgid": 0, "leader": -1}}}},
    })


def test_statistics_counted_before_an_outage_do_not_undo_all_brokers_down() -> None:
    """Statistics lag (one window): acknowledgements made just before the broker went away
    arrive after librdkafka's one "all brokers down" event. With the leader not connected at
    the window's end they count, but the state stays TRANSIENT_FAILURE; once it is connected
    again, new acknowledgements make it READY."""
    metrics = Metrics()
    t = tracker(metrics)
    t.on_stats(_stats(10, "UP"))
    assert t.state is ConnectionState.READY
    t.on_error(KafkaError(KafkaError._ALL_BROKERS_DOWN))
    t.on_stats(_stats(25, "DOWN"))  # the last acknowledgements of before the outage
    assert t.state is ConnectionState.TRANSIENT_FAILURE
    assert metrics.snapshot().topics["t"].sent == 25
    t.on_stats(_stats(25, "UP"))  # connected again, nothing new acknowledged yet
    assert t.state is ConnectionState.TRANSIENT_FAILURE
    t.on_stats(_stats(26, "UP"))
    assert t.state is ConnectionState.READY
