"""Reading topics back from a real broker in tests: every message, from the beginning."""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition


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


def existing_topics(bootstrap: str, prefix: str) -> list[str]:
    """Names of the topics on the broker starting with ``prefix``."""
    from confluent_kafka.admin import AdminClient

    meta = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10)
    return sorted(t for t in meta.topics if t.startswith(prefix))
