"""A topic deleted while events flow to it is re-created, and the events that were waiting for
it are delivered there instead of failing (issue 12, item 3), against the real broker."""

from __future__ import annotations

import time

import pytest
from confluent_kafka.admin import AdminClient

from tests.kafka_helpers import read_topic
from tests.reliability import SERVICE, PacedStream, flush_core, numbers_in, started_host

pytestmark = [pytest.mark.reliability]


def test_a_deleted_topic_is_recreated_and_nothing_fails(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    host = started_host(kafka_bootstrap, topic_prefix, replication_factor=1)
    topic = f"{topic_prefix}.integrated_service.{SERVICE}"
    total = 3000
    stream = PacedStream(host, total, pace=500.0, chunk=25)
    try:
        stream.start()
        time.sleep(2.0)  # about 1,000 events acknowledged on the topic
        admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
        admin.delete_topics([topic])[topic].result(timeout=30)
        stream.join(60)
        assert not stream.errors, stream.errors
        report = flush_core(host, 60.0)
    finally:
        host.stop(timeout_s=10.0)
    assert report.failed == 0 and report.dropped == 0, report
    assert report.delivered >= total, report
    # the events handed over after the deletion (at about event 1,000; 1,500 leaves a margin)
    # are all on the re-created topic; those before it went with the deleted topic
    late = 1500
    numbers = numbers_in(read_topic(kafka_bootstrap, topic, expected=total - late, settle=1.0))
    missing = sorted(set(range(late, total)) - set(numbers))
    assert not missing, missing[:20]
