"""The single broker is stopped and started again while events stream through the host path:
every one of >= 100 000 numbered events arrives exactly once, in order per key."""

from __future__ import annotations

import time
from collections import defaultdict

import pytest

from tests.kafka_helpers import read_topic
from tests.reliability import (
    SERVICE,
    PacedStream,
    core_metrics,
    flush_core,
    lost_and_duplicated,
    numbers_in,
    started_host,
)
from tests.servers import SingleBroker

pytestmark = [pytest.mark.reliability, pytest.mark.slow]

TOTAL = 100_000
PACE = 4_000  # events/s: the stream spans the whole stop/start (~25 s) on a loaded 2-core box


def test_broker_restarted_mid_stream_loses_and_duplicates_nothing(
    kafka_broker: SingleBroker, topic_prefix: str
) -> None:
    kafka_bootstrap = kafka_broker.bootstrap
    host = started_host(kafka_bootstrap, topic_prefix,
                        max_messages=4 * TOTAL, block_timeout_s=120)
    stream = PacedStream(host, TOTAL, PACE, chunk=1000)

    try:
        stream.start()
        time.sleep(3.0)  # a few thousand acknowledged before the broker goes away
        before_stop = core_metrics(host).sent
        stopped_in = kafka_broker.stop()
        assert not kafka_broker.running()
        time.sleep(3.0)  # the stream goes on into the queue while the broker is down
        held_in_outage = core_metrics(host).queued
        started_in = kafka_broker.start()
        stream.join(timeout=120)
        assert not stream.is_alive() and not stream.errors, stream.errors
        report = flush_core(host, 120)
        assert report.undelivered == 0 and report.failed == 0 and report.dropped == 0, report
    finally:
        host.stop(timeout_s=30)
    assert 0 < before_stop < TOTAL, "the restart did not happen mid-stream"
    assert held_in_outage > 0, "nothing was held while the broker was down"

    topic = host_topic = f"{topic_prefix}.integrated_service.{SERVICE}"
    messages = read_topic(kafka_bootstrap, host_topic, TOTAL)
    numbers = numbers_in(messages)
    lost, duplicated = lost_and_duplicated(numbers, TOTAL)
    print(f"\n{topic}: {len(numbers)} read; broker stop took {stopped_in:.1f} s, start "
          f"{started_in:.1f} s; {before_stop} acknowledged before the stop, {held_in_outage} "
          "held during the outage")
    assert not lost, f"{len(lost)} lost, e.g. {lost[:10]}"
    assert not duplicated, f"{len(duplicated)} duplicated, e.g. {list(duplicated.items())[:10]}"
    assert len(numbers) == TOTAL
    per_key: dict[bytes, list[int]] = defaultdict(list)
    for message, number in zip(messages, numbers, strict=True):
        per_key[message.key()].append(number)
    for key, seen in per_key.items():
        assert seen == sorted(seen), f"order broken for key {key!r}"
