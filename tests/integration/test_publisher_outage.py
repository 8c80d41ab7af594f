"""The publisher through a broker outage, against the real single broker.

The tests using the ``kafka_broker`` fixture STOP and restart the shared dev broker (``dev/kafka
stop`` / ``dev/kafka start``, keeping its data), so other tests using it at the same time will
see it go away; they are skipped when the broker is external (``ALIECS_TEST_KAFKA``). The
others point the real client at a port nobody listens on. All are marked ``reliability``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import defaultdict
from typing import Any

import pytest

from aliecs_integration.errors import PublishError
from aliecs_integration.pb import events_pb2
from aliecs_integration.publish.publisher import Publisher
from aliecs_integration.records import CallEvent, CallTraits, HostStopEvent, OpStatus
from aliecs_integration.settings.producer import OverflowPolicy, ProducerConfig
from tests.kafka_helpers import core_kafka_plugin, read_topics
from tests.servers import SingleBroker

pytestmark = pytest.mark.reliability

def rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_broker_stopped_for_20_s_mid_stream_loses_and_duplicates_nothing(
    kafka_broker: SingleBroker, topic_prefix: str
) -> None:
    plugin = core_kafka_plugin(kafka_broker.bootstrap, topic_prefix)
    keys = [f"env{i}" for i in range(4)]
    sent: dict[str, int] = defaultdict(int)
    done = threading.Event()
    errors: list[BaseException] = []

    def produce() -> None:
        try:
            i = 0
            while not done.is_set():
                key = keys[i % len(keys)]
                plugin.on_call(
                    event=CallEvent(
                        environment_id=key,
                        func="f()",
                        status=OpStatus.DONE_OK,
                        traits=CallTraits(trigger="t"),
                        output=str(sent[key]),
                    )
                )
                sent[key] += 1
                i += 1
                time.sleep(0.002)  # ~400 events/s
        except BaseException as exc:  # reported by the test thread
            errors.append(exc)

    thread = threading.Thread(target=produce)
    thread.start()
    try:
        time.sleep(3)
        kafka_broker.stop()
        down_at = time.monotonic()
        time.sleep(20)
        during = plugin.metrics().snapshot()
        assert plugin.connection_state().value == "TRANSIENT_FAILURE"
        kafka_broker.start()
        print(
            f"\nbroker down {time.monotonic() - down_at:.0f} s; queue depth before restart "
            f"{during.queued}"
        )
        time.sleep(3)
    finally:
        done.set()
        thread.join()
    assert errors == []
    total = sum(sent.values())
    report = plugin.publisher.close(120)
    plugin.on_host_stop(event=HostStopEvent(timeout_s=1))
    assert (report.delivered, report.failed, report.dropped, report.undelivered) == (total, 0, 0, 0)
    got = read_topics(kafka_broker.bootstrap, [plugin.topics.call], total, timeout=120, settle=2.0)
    seen: dict[str, list[int]] = defaultdict(list)
    for msg in got[plugin.topics.call]:
        seen[msg.key().decode()].append(
            int(events_pb2.Event.FromString(msg.value()).callEvent.output)
        )
    for key in keys:
        assert seen[key] == list(range(sent[key])), f"{key}: lost, duplicated or reordered"
    print(f"{total} events, all delivered exactly once, in order per key")


def small_publisher(bootstrap: str, policy: OverflowPolicy, **queue: Any) -> Publisher:
    config = ProducerConfig(overflow=policy, **queue)
    return Publisher([bootstrap], config, name=f"test-{policy.value}")


def test_broker_down_with_a_small_cap_bounds_memory_and_counts_drops(
    kafka_broker: SingleBroker, unique_topic: Any
) -> None:
    newest = small_publisher(kafka_broker.bootstrap, OverflowPolicy.DROP_NEWEST, max_messages=100)
    oldest = small_publisher(kafka_broker.bootstrap, OverflowPolicy.DROP_OLDEST, max_messages=100)
    block = small_publisher(
        kafka_broker.bootstrap, OverflowPolicy.BLOCK, max_messages=20, block_timeout_s=0.2
    )
    big = small_publisher(
        kafka_broker.bootstrap, OverflowPolicy.DROP_NEWEST, max_messages=1_000_000,
        max_bytes=1 << 20,
    )
    pubs = {"newest": newest, "oldest": oldest, "block": block, "big": big}
    topics = {name: unique_topic(name) for name in pubs}
    try:
        for name, pub in pubs.items():  # topics exist before the outage
            pub.publish(topics[name], b"before")
            assert pub.flush(30).delivered == 1
        kafka_broker.stop()
        for i in range(1000):
            newest.publish(topics["newest"], str(i).encode())
            oldest.publish(topics["oldest"], str(i).encode())
            assert newest.metrics.snapshot().queued <= 100 + 5  # + librdkafka's own events
        assert newest.metrics.snapshot().dropped == 900
        assert oldest.metrics.snapshot().dropped == 900

        for i in range(20):
            block.publish(topics["block"], str(i).encode())
        started = time.monotonic()
        with pytest.raises(PublishError, match="queue full"):
            block.publish(topics["block"], b"one too many")
        assert time.monotonic() - started >= 0.2
        assert block.metrics.snapshot().dropped == 1

        rss_before = rss_bytes()
        kib = b"k" * 1024
        for _ in range(50_000):  # 50 MiB offered to a 1 MiB cap
            big.publish(topics["big"], kib)
        grown = rss_bytes() - rss_before
        snap = big.metrics.snapshot()
        assert snap.dropped >= 50_000 - 1024  # at most 1 MiB of 1 KiB messages held
        assert grown < 20 * 1024 * 1024, f"RSS grew {grown / 2**20:.1f} MiB"
        print(
            f"\n50 MiB offered to a 1 MiB cap: RSS +{grown / 2**20:.1f} MiB, "
            f"{snap.dropped} dropped, {snap.queued} queued"
        )
        kafka_broker.start()
        reports = {name: pub.close(60) for name, pub in pubs.items()}
    finally:
        for pub in pubs.values():
            if not pub.closed:
                pub.close(1)
    assert reports["newest"].delivered == reports["oldest"].delivered == 101
    assert reports["block"].delivered == 21
    assert all(r.undelivered == 0 and r.failed == 0 for r in reports.values())
    got = read_topics(kafka_broker.bootstrap, [topics["newest"], topics["oldest"]], 202, timeout=60,
                      settle=2.0)
    assert [m.value() for m in got[topics["newest"]]] == [b"before"] + [
        str(i).encode() for i in range(100)
    ]
    # librdkafka's half (50) had been handed over; the publisher's half kept the newest 50
    assert [m.value() for m in got[topics["oldest"]]] == [b"before"] + [
        str(i).encode() for i in (*range(50), *range(950, 1000))
    ]


def test_unreachable_since_start_uses_the_whole_cap_and_logs_little(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bridged = "aliecs_integration.publish.publisher.librdkafka"
    caplog.set_level(logging.WARNING)
    caplog.set_level(logging.DEBUG, logger=bridged)
    config = ProducerConfig(overflow=OverflowPolicy.DROP_NEWEST, max_messages=1000)
    pub = Publisher(["127.0.0.1:1"], config, name="down-since-start")  # nobody listens there
    try:
        for i in range(1001):
            pub.publish("never.created", str(i).encode())
        snap = pub.metrics.snapshot()
        held = pub._held.count
        # not half of the cap: all of it, less the client's few events not served yet
        assert 990 <= held <= 1000 and snap.dropped == 1001 - held, (held, snap)
        assert snap.published == 1001
        time.sleep(6)  # both clients fail to connect several times a second meanwhile; the
        # topic thread's first metadata request times out after ADMIN_TIMEOUT_S (5 s)
    finally:
        report = pub.close(0.5)
    assert (report.delivered, report.dropped, report.undelivered) == (0, 1001 - held, held)
    connect_failed = [
        r.getMessage()
        for r in caplog.records
        if r.name == bridged and r.getMessage().startswith("FAIL ")
    ]
    # per client (producer and topic admin): one line per 30 s, and a summary at close
    clients = {m.split(" ")[1].rstrip(":") for m in connect_failed}
    assert len(clients) == 2, connect_failed  # the admin client's lines are served too
    assert len(connect_failed) <= 4, connect_failed
    assert sum("similar line(s) suppressed" in m for m in connect_failed) == 2, connect_failed
    assert "127.0.0.1:1" in caplog.text  # the topic thread names the cluster it cannot reach
    assert "topics [] " not in caplog.text
