"""The single broker is down when the host starts and for 30 s more while events come in:
once it is up, every event (within the queue cap) is delivered, to topics created then.

Until its topic exists a message waits in the publisher's own queue, which is half of
``queue.maxMessages`` (the other half is librdkafka's): the cap is set to hold them all."""

from __future__ import annotations

import time

import pytest

from tests.kafka_helpers import read_topic
from tests.reliability import (
    SERVICE,
    core_metrics,
    fire_numbered,
    flush_core,
    lost_and_duplicated,
    numbers_in,
    started_host,
)
from tests.servers import SingleBroker

pytestmark = [pytest.mark.reliability, pytest.mark.slow]

TOTAL = 20_000
DOWN_S = 30.0


def test_broker_down_at_start_for_30_s_then_everything_is_delivered(
    kafka_broker: SingleBroker, topic_prefix: str
) -> None:
    kafka_bootstrap = kafka_broker.bootstrap
    kafka_broker.stop()
    assert not kafka_broker.running()
    try:
        host = started_host(kafka_bootstrap, topic_prefix, max_messages=4 * TOTAL)
        down_since = time.monotonic()
        for chunk in range(0, TOTAL, 1000):  # spread over the outage
            fire_numbered(host, range(chunk, chunk + 1000))
            time.sleep(DOWN_S / (TOTAL / 1000) / 2)
        held = core_metrics(host)
        time.sleep(max(0.0, DOWN_S - (time.monotonic() - down_since)))
        assert core_metrics(host).sent == 0
    finally:
        kafka_broker.start()
    try:
        report = flush_core(host, 120)
    finally:
        host.stop(timeout_s=30)
    # + the coreStartEvent of host start, on the core topic
    assert held.queued == TOTAL + 1 and held.sent == 0 and held.dropped == 0, held
    assert report.delivered == TOTAL + 1 and report.undelivered == 0, report
    assert report.failed == 0 and report.dropped == 0, report
    numbers = numbers_in(read_topic(kafka_bootstrap, f"{topic_prefix}.integrated_service."
                                    f"{SERVICE}", TOTAL))
    lost, duplicated = lost_and_duplicated(numbers, TOTAL)
    assert not lost and not duplicated, (lost[:10], list(duplicated)[:10])
    assert numbers == sorted(numbers)  # one key per env, but also one partition: global order
