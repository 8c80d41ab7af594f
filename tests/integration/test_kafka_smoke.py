"""Smoke tests against the real dev Kafka (single broker and 3-node cluster)."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable

import pytest
from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import (  # type: ignore[attr-defined]  # no __all__ there
    AdminClient,
    ConfigResource,
    NewTopic,
    ResourceType,
)

from tests.kafka_helpers import create_topic
from tests.servers import KafkaCluster

N_MESSAGES = 1000
KEYS = [f"key-{i}" for i in range(7)]


def test_produce_consume_1000_messages(
    kafka_bootstrap: str, unique_topic: Callable[..., str]
) -> None:
    topic = unique_topic("smoke")
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    create_topic(admin, NewTopic(topic, num_partitions=3, replication_factor=1))

    producer = Producer({"bootstrap.servers": kafka_bootstrap, "enable.idempotence": True})
    errors: list[str] = []

    def on_delivery(err: object, _msg: object) -> None:
        if err is not None:
            errors.append(str(err))

    sent: dict[str, list[int]] = defaultdict(list)
    for i in range(N_MESSAGES):
        key = KEYS[i % len(KEYS)]
        sent[key].append(i)
        producer.produce(topic, key=key, value=str(i).encode(), on_delivery=on_delivery)
        producer.poll(0)
    assert producer.flush(30) == 0
    assert errors == []

    consumer = Consumer(
        {
            "bootstrap.servers": kafka_bootstrap,
            "group.id": f"{topic}.group",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    received: dict[str, list[int]] = defaultdict(list)
    try:
        consumer.subscribe([topic])
        count = 0
        for _ in range(600):  # bounded: at most ~60 s of polling
            if count >= N_MESSAGES:
                break
            for msg in consumer.consume(num_messages=500, timeout=0.1):
                if msg.error():
                    raise KafkaException(msg.error())
                raw_key, raw_value = msg.key(), msg.value()
                assert raw_key is not None and raw_value is not None
                received[bytes(raw_key).decode()].append(int(raw_value))
                count += 1
    finally:
        consumer.close()

    assert sum(len(v) for v in received.values()) == N_MESSAGES
    # every message arrived exactly once, in production order per key
    assert dict(received) == dict(sent)


def test_cluster_topic_rf3_min_isr2(
    kafka_cluster: KafkaCluster, unique_topic: Callable[..., str]
) -> None:
    topic = unique_topic("rf3")
    admin = AdminClient({"bootstrap.servers": kafka_cluster.bootstrap})
    create_topic(
        admin,
        NewTopic(
            topic, num_partitions=3, replication_factor=3, config={"min.insync.replicas": "2"}
        ),
    )

    md = admin.list_topics(topic=topic, timeout=10)
    assert len(md.brokers) == 3
    tmd = md.topics[topic]
    assert tmd.error is None
    assert len(tmd.partitions) == 3
    for p in tmd.partitions.values():
        assert sorted(p.replicas) == [1, 2, 3], p
        assert sorted(p.isrs) == [1, 2, 3], p
        assert p.leader in (1, 2, 3)

    res = ConfigResource(ResourceType.TOPIC, topic)
    configs = admin.describe_configs([res])[res].result(timeout=30)
    assert configs["min.insync.replicas"].value == "2"

    assert kafka_cluster.leader_of(topic, 0) in (1, 2, 3)


@pytest.mark.reliability
@pytest.mark.slow
def test_cluster_leader_failover_and_node_restart(
    kafka_cluster: KafkaCluster, unique_topic: Callable[..., str]
) -> None:
    topic = unique_topic("failover")
    admin = AdminClient({"bootstrap.servers": kafka_cluster.bootstrap})
    create_topic(
        admin,
        NewTopic(
            topic, num_partitions=1, replication_factor=3, config={"min.insync.replicas": "2"}
        ),
    )
    old_leader = kafka_cluster.leader_of(topic)
    kafka_cluster.kill_node(old_leader)

    new_leader = kafka_cluster.leader_of(topic, exclude={old_leader}, timeout=60)
    assert new_leader != old_leader

    # with 2 of 3 replicas alive, acks=all writes still succeed (min.insync.replicas=2)
    producer = Producer({"bootstrap.servers": kafka_cluster.bootstrap, "acks": "all"})
    errors: list[object] = []
    for i in range(20):
        producer.produce(topic, value=str(i).encode(), on_delivery=lambda e, _m: errors.append(e))
    assert producer.flush(60) == 0
    assert errors == [None] * 20

    kafka_cluster.start_node(old_leader)
    deadline = time.monotonic() + 60
    while sorted(kafka_cluster.partition_metadata(topic).isrs) != [1, 2, 3]:
        assert time.monotonic() < deadline, "restarted node did not rejoin the ISR"
        time.sleep(0.5)
