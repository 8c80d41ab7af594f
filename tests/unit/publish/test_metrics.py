"""Unit tests of aliecs_integration.publish.metrics: counters, latency sampling and summary,
the latency histogram in snapshots, the rate-limited log and log filter (the Prometheus form is
tested with the collector, tests/unit/monitoring/test_collector.py)."""

from __future__ import annotations

import logging
import sys
import threading
import time

import pytest

from aliecs_integration.log_limits import RateLimitedLog, RateLimitFilter
from aliecs_integration.publish.metrics import LATENCY_BUCKETS, Metrics


def test_counters_per_topic_and_totals() -> None:
    m = Metrics()
    m.record_sent("a", 0.002)
    m.record_sent("a", 0.004)
    m.record_sent("b", 0.1)
    m.record_failed("b")
    m.record_dropped("a", 3)
    m.set_queue_depth_source(lambda: 7)
    snap = m.snapshot()
    assert (snap.sent, snap.failed, snap.dropped, snap.queued) == (3, 1, 3, 7)
    assert (snap.topics["a"].sent, snap.topics["a"].failed, snap.topics["a"].dropped) == (2, 0, 3)
    assert (snap.topics["b"].sent, snap.topics["b"].failed) == (1, 1)
    assert snap.topics["b"].latency.max_s == 0.1


def test_latency_percentiles_and_max() -> None:
    m = Metrics(reservoir_size=1000, sample_every=1)
    for i in range(1, 101):  # 1..100 ms
        m.record_sent("t", i / 1000)
    lat = m.snapshot().topics["t"].latency
    assert lat.count == 100
    assert lat.p50_s == pytest.approx(0.050, abs=0.0015)
    assert lat.p99_s == pytest.approx(0.099, abs=0.0015)
    assert lat.max_s == pytest.approx(0.100)


def test_reservoir_is_bounded_and_keeps_recent_samples() -> None:
    m = Metrics(reservoir_size=10, sample_every=1)
    for _ in range(1000):
        m.record_sent("t", 5.0)
    for _ in range(10):
        m.record_sent("t", 0.001)
    lat = m.snapshot().topics["t"].latency
    assert lat.p99_s == 0.001  # the slow ones were pushed out of the reservoir
    assert lat.max_s == 5.0  # max is since start
    assert lat.count == 1010
    with pytest.raises(ValueError, match="reservoir_size"):
        Metrics(reservoir_size=0)
    with pytest.raises(ValueError, match="sample_every"):
        Metrics(sample_every=0)


def test_latency_is_sampled_per_topic_while_counts_stay_exact() -> None:
    m = Metrics(sample_every=4)
    due = [m.count_sent("a") for _ in range(10)]
    assert due == [True, False, False, False, True, False, False, False, True, False]
    assert m.count_sent("b")  # every topic's first delivery is sampled
    for i in range(10):
        if due[i]:
            m.sample_latency("a", (i + 1) / 1000)
    m.sample_latency("b", 0.5)
    snap = m.snapshot()
    a, b = snap.topics["a"].latency, snap.topics["b"].latency
    assert (a.count, a.samples, a.max_s) == (10, 3, 0.009)
    assert (b.count, b.samples, b.p99_s) == (1, 1, 0.5)
    assert snap.sent == 11
    assert (snap.topics["a"].sent, sum(a.buckets)) == (10, 3)


def test_published_is_counted_per_topic() -> None:
    m = Metrics()
    for _ in range(3):
        m.count_published("a")
    m.count_published("b")
    m.count_sent("a")
    m.record_dropped("b")
    snap = m.snapshot()
    assert (snap.topics["a"].published, snap.topics["a"].sent) == (3, 1)
    assert (snap.topics["b"].published, snap.topics["b"].dropped) == (1, 1)
    assert snap.published == 4


def test_counts_from_several_threads_are_exact_and_never_ahead_of_published() -> None:
    m = Metrics()
    stop = threading.Event()
    seen: list[tuple[int, int]] = []

    def deliver() -> None:  # the publisher's order: published first, acknowledged later
        for i in range(21_000):
            topic = f"t{i % 3}"
            m.count_published(topic)
            m.count_sent(topic)

    def fold() -> None:
        while not stop.is_set():
            m.fold()
            snap = m.snapshot()
            seen.append((snap.published, snap.sent))

    threads = [threading.Thread(target=deliver) for _ in range(3)]
    folder = threading.Thread(target=fold)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads often: races show
    try:
        folder.start()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        stop.set()
        folder.join()
    finally:
        sys.setswitchinterval(interval)
    snap = m.snapshot()
    assert (snap.published, snap.sent) == (63_000, 63_000)
    assert [snap.topics[f"t{i}"].sent for i in range(3)] == [21_000] * 3
    assert seen and all(published >= sent for published, sent in seen)


def test_concurrent_updates_are_not_lost() -> None:
    m = Metrics()

    def work() -> None:
        for _ in range(5000):
            m.record_sent("t", 0.001)
            m.record_dropped("t")

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    snap = m.snapshot()
    assert (snap.sent, snap.dropped) == (20000, 20000)


def test_snapshot_histogram_buckets_and_sum() -> None:
    m = Metrics(sample_every=1)
    m.count_published("aliecs.run")
    m.record_sent("aliecs.run", 0.003)
    m.record_sent("aliecs.run", 0.2)
    m.record_sent("aliecs.run", 100.0)  # past the largest bound: the +Inf bucket
    latency = m.snapshot().topics["aliecs.run"].latency
    assert len(latency.buckets) == len(LATENCY_BUCKETS) + 1
    assert latency.buckets[LATENCY_BUCKETS.index(0.005)] == 1
    assert latency.buckets[LATENCY_BUCKETS.index(0.25)] == 1
    assert latency.buckets[-1] == 1
    assert sum(latency.buckets) == latency.samples == 3
    assert latency.sum_s == pytest.approx(100.203)


def test_nothing_sampled_has_no_buckets() -> None:
    m = Metrics()
    m.record_failed("a")
    latency = m.snapshot().topics["a"].latency
    assert (latency.buckets, latency.sum_s, latency.samples) == ((), 0.0, 0)


def test_rate_limited_log_counts_between_messages(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.ratelimited")
    limited = RateLimitedLog(logger, logging.WARNING, interval_s=0.2)
    with caplog.at_level(logging.WARNING, logger="test.ratelimited"):
        for i in range(5):
            limited.note("dropped %s", i)
        assert [r.getMessage() for r in caplog.records] == [
            "dropped 0 (1 time(s) since the last such message)"
        ]
        assert limited.pending == 4
        time.sleep(0.25)
        limited.note("dropped %s", 5)
    assert caplog.records[-1].getMessage() == "dropped 5 (5 time(s) since the last such message)"
    assert limited.pending == 0


def test_rate_limit_filter_suppresses_repeats_per_kind(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.ratefilter")
    logger.addFilter(RateLimitFilter(interval_s=0.2))
    with caplog.at_level(logging.ERROR, logger="test.ratefilter"):
        for _ in range(10):
            logger.error("%s [%s] %s", "FAIL", "rdkafka#producer-1", "Connect failed")
        logger.error("%s [%s] %s", "FAIL", "rdkafka#producer-2", "Connect failed")
        logger.error("%s [%s] %s", "ERROR", "rdkafka#producer-1", "other")
        time.sleep(0.25)
        logger.error("%s [%s] %s", "FAIL", "rdkafka#producer-1", "Connect failed")
    assert [r.getMessage() for r in caplog.records] == [
        "FAIL [rdkafka#producer-1] Connect failed",
        "FAIL [rdkafka#producer-2] Connect failed",
        "ERROR [rdkafka#producer-1] other",
        "FAIL [rdkafka#producer-1] Connect failed (9 similar suppressed)",
    ]


def test_rate_limit_filter_release_reports_what_is_still_suppressed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logger = logging.getLogger("test.ratefilter.release")
    limiter = RateLimitFilter(interval_s=60)
    logger.addFilter(limiter)
    with caplog.at_level(logging.DEBUG, logger="test.ratefilter.release"):
        for _ in range(100):
            logger.error("%s [%s] %s", "FAIL", "rdkafka#producer-9", "Connect failed")
        logger.warning("%s [%s] %s", "REQTMOUT", "rdkafka#producer-9", "Timed out")
        logger.info("%s [%s] %s", "REQTMOUT", "rdkafka#producer-9", "Timed out")
        assert len(caplog.records) == 2
        assert limiter.release(logger) == 100
        assert limiter.release(logger) == 0  # reported once
    suffix = "similar line(s) suppressed since the last one"
    assert [(r.levelno, r.getMessage()) for r in caplog.records[2:]] == [
        (logging.ERROR, f"FAIL [rdkafka#producer-9]: 99 {suffix}"),
        (logging.INFO, f"REQTMOUT [rdkafka#producer-9]: 1 {suffix}"),
    ]


def test_counts_raised_from_statistics_never_go_down_and_windows_set_the_latency() -> None:
    m = Metrics()
    m.raise_sent({"a": 5, "b": 0})
    m.raise_sent({"a": 3})
    snap = m.snapshot()
    assert snap.topics["a"].sent == 5 and "b" not in snap.topics
    m.record_latency_window("a", 0.002, 0.009, 0.012)
    m.record_latency_window("a", 0.001, 0.004, 0.005)
    latency = m.snapshot().topics["a"].latency
    assert (latency.p50_s, latency.p99_s, latency.max_s, latency.samples) == (
        0.001, 0.004, 0.012, 2)
    assert sum(latency.buckets) == 2
    assert latency.sum_s == pytest.approx(0.003)
    assert m.outcomes() == {"a": (0, 5, 0, 0)}


def test_merged_snapshots_add_up_so_counters_never_go_down() -> None:
    from aliecs_integration.publish.metrics import merged

    first, second = Metrics(sample_every=1), Metrics(sample_every=1)
    for m, topic, n in ((first, "a", 3), (first, "b", 1), (second, "a", 2)):
        for _ in range(n):
            m.count_published(topic)
            m.record_sent(topic, 0.002)
    m1, m2 = first.snapshot(), second.snapshot()
    both = merged([m1, m2])
    assert both.sent == both.published == 6
    assert both.topics["a"].sent == 5 and both.topics["b"].sent == 1
    a = both.topics["a"].latency
    assert a.count == m1.topics["a"].latency.count + m2.topics["a"].latency.count
    assert sum(a.buckets) == sum(m1.topics["a"].latency.buckets) + sum(
        m2.topics["a"].latency.buckets)
    assert a.sum_s == m1.topics["a"].latency.sum_s + m2.topics["a"].latency.sum_s
    assert merged([m1]) == m1 and merged([]).sent == 0


def test_only_topics_keeps_those_topics_and_their_totals() -> None:
    from aliecs_integration.publish.metrics import only_topics

    metrics = Metrics(sample_every=1)
    for topic, n in (("core", 3), ("legacy.a", 2), ("legacy.b", 1)):
        for _ in range(n):
            metrics.count_published(topic)
            metrics.record_sent(topic, 0.001)
    metrics.record_dropped("legacy.b")
    snap = metrics.snapshot()
    legacy = only_topics(snap, {"legacy.a", "legacy.b", "never-used"})
    assert set(legacy.topics) == {"legacy.a", "legacy.b"}
    assert (legacy.published, legacy.sent, legacy.dropped) == (3, 3, 1)
    assert legacy.topics["legacy.a"] == snap.topics["legacy.a"]
    assert legacy.queued == snap.queued
    assert only_topics(snap, ()).topics == {}
