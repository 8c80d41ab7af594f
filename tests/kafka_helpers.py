"""Helpers for tests against a real broker: settings that publish under a test's topic root,
creating a topic, and reading topics back (every message, from the beginning)."""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from aliecs_integration.records import PluginContext
from aliecs_integration.settings.core import Settings
from aliecs_integration.settings.producer import ProducerConfig
from tests.servers import wait_for_topic


def core_kafka_settings(bootstrap: str, root: str, **producer: Any) -> Settings:
    """Settings publishing to ``bootstrap`` (comma-separated) under the topic root ``root``;
    ``producer`` sets other :class:`ProducerConfig` fields (``max_messages=``, ``properties=``,
    ``partitions=``...). No ``integrationPlugins``: the host loads core-kafka only."""
    return Settings(kafka_endpoints=tuple(bootstrap.split(",")),
                    producer=ProducerConfig(topic_root=root, **producer), source="test settings")


def core_kafka_plugin(bootstrap: str, root: str, **producer: Any) -> Any:
    """A core-kafka plugin on its own (no host) with :func:`core_kafka_settings`; the caller
    starts it (``on_host_start``) and stops it (``on_host_stop``)."""
    from aliecs_integration_plugins import core_kafka

    context = PluginContext("core-kafka", core_kafka_settings(bootstrap, root, **producer))
    return core_kafka.CoreKafkaPlugin(context)


def create_topic(admin: AdminClient, topic: NewTopic) -> None:
    """Create ``topic`` and wait until the brokers know it with a leader for each partition
    (creation is acknowledged before every broker knows the topic)."""
    admin.create_topics([topic], operation_timeout=30)[topic.topic].result(timeout=60)
    wait_for_topic(admin, topic.topic, topic.num_partitions)


def read_topics(
    bootstrap: str,
    topics: Iterable[str],
    expected: int,
    *,
    timeout: float = 60.0,
    settle: float = 1.5,
) -> dict[str, list[Any]]:
    """Every message of ``topics`` (which must exist), by topic, in partition order.

    Waits until ``expected`` messages arrived (or ``timeout``), then ``settle`` seconds more so
    that duplicates or strays would show. Raises on a consumer error.
    """
    topics = list(topics)
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": f"test-read-{uuid.uuid4().hex}",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
    })
    try:
        meta = consumer.list_topics(timeout=10)
        missing = [t for t in topics if t not in meta.topics]
        if missing:
            raise AssertionError(f"topics do not exist: {missing}")
        consumer.assign([
            TopicPartition(t, p, OFFSET_BEGINNING)
            for t in topics
            for p in meta.topics[t].partitions
        ])
        out: dict[str, list[Any]] = defaultdict(list)
        count, deadline, settled = 0, time.monotonic() + timeout, None
        while time.monotonic() < deadline and (settled is None or time.monotonic() < settled):
            for msg in consumer.consume(num_messages=1000, timeout=0.3):
                if msg.error():
                    raise KafkaException(msg.error())
                out[str(msg.topic())].append(msg)
                count += 1
            if count >= expected and settled is None:
                settled = time.monotonic() + settle
        return dict(out)
    finally:
        consumer.close()


def read_topic(bootstrap: str, topic: str, expected: int, timeout: float = 120.0,
               settle: float = 3.0) -> list[Any]:
    """Every message of ``topic`` from the beginning: :func:`read_topics` of one topic, with
    the longer waits of the reliability tests."""
    return read_topics(bootstrap, [topic], expected, timeout=timeout, settle=settle).get(topic, [])


def existing_topics(bootstrap: str, prefix: str) -> list[str]:
    """Names of the topics on the broker starting with ``prefix``."""
    meta = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10)
    return sorted(t for t in meta.topics if t.startswith(prefix))
