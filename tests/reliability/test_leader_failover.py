"""3-node cluster, replication factor 3, ``min.insync.replicas=2``: the partition leader is
SIGKILLed while numbered events stream through the host path; none is lost."""

from __future__ import annotations

import time

import pytest
from confluent_kafka.admin import NewTopic  # type: ignore[attr-defined]

from tests.kafka_helpers import create_topic, read_topic
from tests.reliability import (
    SERVICE,
    PacedStream,
    core_metrics,
    flush_core,
    lost_and_duplicated,
    numbers_in,
    started_host,
)
from tests.servers import KafkaCluster

pytestmark = [pytest.mark.reliability, pytest.mark.slow]

TOTAL = 30_000
PACE = 3_000  # events/s: ~10 s of stream, the kill lands in the middle


def test_partition_leader_killed_mid_stream_loses_nothing(
    kafka_cluster: KafkaCluster, topic_prefix: str
) -> None:
    topic = f"{topic_prefix}.integrated_service.{SERVICE}"
    admin = kafka_cluster.admin()
    # created before the host starts (the publisher then finds it): RF 3, min ISR 2
    create_topic(admin, NewTopic(topic, num_partitions=1, replication_factor=3,
                                 config={"min.insync.replicas": "2"}))
    leader = kafka_cluster.leader_of(topic)
    host = started_host(kafka_cluster.bootstrap, topic_prefix,
                        max_messages=4 * TOTAL, block_timeout_s=120)
    stream = PacedStream(host, TOTAL, PACE, chunk=500)

    try:
        stream.start()
        time.sleep(3.0)
        before_kill = core_metrics(host).sent
        kafka_cluster.kill_node(leader)
        new_leader = kafka_cluster.leader_of(topic, exclude={leader}, timeout=60)
        stream.join(timeout=180)
        assert not stream.is_alive() and not stream.errors, stream.errors
        report = flush_core(host, 120)
        assert report.undelivered == 0 and report.failed == 0 and report.dropped == 0, report
    finally:
        host.stop(timeout_s=30)
    assert 0 < before_kill < TOTAL, "the leader was not killed mid-stream"
    assert new_leader != leader

    numbers = numbers_in(read_topic(kafka_cluster.bootstrap, topic, TOTAL))
    lost, duplicated = lost_and_duplicated(numbers, TOTAL)
    print(f"\n{topic}: leader {leader} killed after {before_kill} acknowledged; new leader "
          f"{new_leader}; {len(numbers)} read, {len(duplicated)} duplicated")
    assert not lost, f"{len(lost)} lost, e.g. {lost[:10]}"
    assert not duplicated, f"{len(duplicated)} duplicated, e.g. {list(duplicated.items())[:10]}"
