"""Producer metrics: messages sent, failed, dropped, queue depth, delivery latency per topic.

:class:`Metrics` is thread-safe (one lock, held for a few dictionary operations per call).
Latency is kept two ways per topic: Prometheus histogram buckets (cumulative since start) and
a ring of the last ``reservoir_size`` samples, from which the snapshot's p50/p99 are computed.

The Prometheus text exposition format (version 0.0.4) is written here by hand: a handful of
counters, one gauge and one histogram do not justify a runtime dependency of the always-on
core plugin on ``prometheus_client`` (its global registry and metric objects would also cost
more per delivery than this module's plain counters).
"""

from __future__ import annotations

import bisect
import logging
import threading
import time
from collections.abc import Callable, Mapping
from types import MappingProxyType

import attrs

#: Upper bounds (seconds) of the delivery-latency histogram buckets; ``+Inf`` is implied.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)
PREFIX = "aliecs_kafka"
_bisect = bisect.bisect_left


@attrs.frozen
class LatencySummary:
    """Delivery latency of one topic: ``count`` deliveries since start; ``p50_s``/``p99_s``
    over the most recent samples (the reservoir); ``max_s`` since start."""

    count: int = 0
    p50_s: float = 0.0
    p99_s: float = 0.0
    max_s: float = 0.0


@attrs.frozen
class TopicMetrics:
    """Counters of one topic since start."""

    sent: int = 0
    failed: int = 0
    dropped: int = 0
    latency: LatencySummary = LatencySummary()


@attrs.frozen
class MetricsSnapshot:
    """Totals over all topics, the queue depth at the time of the snapshot, and each topic."""

    sent: int = 0
    failed: int = 0
    dropped: int = 0
    queued: int = 0
    topics: Mapping[str, TopicMetrics] = attrs.field(factory=lambda: MappingProxyType({}))


class _Topic:
    __slots__ = ("buckets", "dropped", "failed", "latency_sum", "max", "ring", "ring_pos", "sent")

    def __init__(self) -> None:
        self.sent = self.failed = self.dropped = 0
        self.buckets = [0] * (len(LATENCY_BUCKETS) + 1)
        self.latency_sum = 0.0
        self.max = 0.0
        self.ring: list[float] = []
        self.ring_pos = 0

    def summary(self) -> LatencySummary:
        if not self.ring:
            return LatencySummary(count=self.sent, max_s=self.max)
        ordered = sorted(self.ring)
        last = len(ordered) - 1
        return LatencySummary(
            count=self.sent,
            p50_s=ordered[round(0.50 * last)],
            p99_s=ordered[round(0.99 * last)],
            max_s=self.max,
        )


class Metrics:
    """Thread-safe producer counters. ``queue_depth`` (set by the publisher) reports how many
    messages are held and not yet delivered; it is read at each snapshot."""

    def __init__(self, *, reservoir_size: int = 1024) -> None:
        if reservoir_size < 1:
            raise ValueError(f"reservoir_size {reservoir_size}: expected >= 1")
        self._size = reservoir_size
        self._lock = threading.Lock()
        self._topics: dict[str, _Topic] = {}
        self._queue_depth: Callable[[], int] = lambda: 0

    def set_queue_depth_source(self, source: Callable[[], int]) -> None:
        """Use ``source()`` as the queue depth in snapshots and the Prometheus gauge."""
        self._queue_depth = source

    def _topic(self, topic: str) -> _Topic:
        entry = self._topics.get(topic)
        if entry is None:
            entry = self._topics[topic] = _Topic()
        return entry

    def record_sent(self, topic: str, latency_s: float) -> None:
        """One message of ``topic`` was acknowledged ``latency_s`` seconds after it was queued."""
        index = _bisect(LATENCY_BUCKETS, latency_s)
        with self._lock:
            t = self._topics.get(topic) or self._topic(topic)
            t.sent += 1
            t.buckets[index] += 1
            t.latency_sum += latency_s
            if latency_s > t.max:
                t.max = latency_s
            ring = t.ring
            if len(ring) < self._size:
                ring.append(latency_s)
            else:
                pos = t.ring_pos
                ring[pos] = latency_s
                t.ring_pos = pos + 1 if pos + 1 < self._size else 0

    def record_failed(self, topic: str, count: int = 1) -> None:
        """``count`` messages of ``topic`` were reported failed by the client."""
        with self._lock:
            self._topic(topic).failed += count

    def record_dropped(self, topic: str, count: int = 1) -> None:
        """``count`` messages of ``topic`` were dropped by the overflow policy or refused."""
        with self._lock:
            self._topic(topic).dropped += count

    def snapshot(self) -> MetricsSnapshot:
        """A consistent copy of every counter, plus the current queue depth."""
        queued = self._queue_depth()
        with self._lock:
            topics = {
                name: TopicMetrics(t.sent, t.failed, t.dropped, t.summary())
                for name, t in sorted(self._topics.items())
            }
        return MetricsSnapshot(
            sent=sum(t.sent for t in topics.values()),
            failed=sum(t.failed for t in topics.values()),
            dropped=sum(t.dropped for t in topics.values()),
            queued=queued,
            topics=MappingProxyType(topics),
        )

    def to_prometheus(self) -> str:
        """Every metric in the Prometheus text exposition format (0.0.4), newline-terminated."""
        queued = self._queue_depth()
        with self._lock:
            rows = [
                (name, t.sent, t.failed, t.dropped, list(t.buckets), t.latency_sum)
                for name, t in sorted(self._topics.items())
            ]
        out: list[str] = []
        for metric, column, help_text in (
            ("messages_sent_total", 1, "Messages acknowledged by the broker."),
            ("messages_failed_total", 2, "Messages the Kafka client reported as failed."),
            ("messages_dropped_total", 3, "Messages dropped by the overflow policy or refused."),
        ):
            out += [f"# HELP {PREFIX}_{metric} {help_text}", f"# TYPE {PREFIX}_{metric} counter"]
            out += [f'{PREFIX}_{metric}{{topic="{_label(r[0])}"}} {r[column]}' for r in rows]
        out += [
            f"# HELP {PREFIX}_queue_messages Messages held and not yet delivered.",
            f"# TYPE {PREFIX}_queue_messages gauge",
            f"{PREFIX}_queue_messages {queued}",
        ]
        name = f"{PREFIX}_delivery_latency_seconds"
        out += [
            f"# HELP {name} Time from publish to broker acknowledgement.",
            f"# TYPE {name} histogram",
        ]
        for topic, _sent, _failed, _dropped, buckets, total in rows:
            label = _label(topic)
            cumulative = 0
            for bound, count in zip((*LATENCY_BUCKETS, None), buckets, strict=True):
                cumulative += count
                le = "+Inf" if bound is None else repr(bound)
                out.append(f'{name}_bucket{{topic="{label}",le="{le}"}} {cumulative}')
            out.append(f'{name}_sum{{topic="{label}"}} {total!r}')
            out.append(f'{name}_count{{topic="{label}"}} {cumulative}')
        return "\n".join(out) + "\n"


def _label(value: str) -> str:
    """Escape a label value per the exposition format: backslash, double quote, newline."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class RateLimitedLog:
    """Counts occurrences of one kind of problem; logs at most once per ``interval_s``, with
    the number of occurrences since the previous message (``pending`` holds those not yet
    logged). Thread-safe."""

    def __init__(self, logger: logging.Logger, level: int, interval_s: float = 5.0) -> None:
        self.logger, self.level, self.interval_s = logger, level, interval_s
        self.pending, self._last = 0, -interval_s
        self._lock = threading.Lock()

    def note(self, message: str, *args: object) -> None:
        """Count one occurrence; log ``message % args`` unless logged within ``interval_s``."""
        with self._lock:
            self.pending += 1
            now = time.monotonic()
            if now - self._last < self.interval_s:
                return
            count, self.pending, self._last = self.pending, 0, now
        self.logger.log(
            self.level, message + " (%d time(s) since the last such message)", *args, count
        )


class RateLimitFilter(logging.Filter):
    """A logging filter letting through at most one record per ``interval_s`` of each kind
    (the first two words of the message: for librdkafka, its facility and client name); the
    next record let through says how many of its kind were suppressed. Thread-safe."""

    def __init__(self, interval_s: float = 5.0) -> None:
        super().__init__()
        self.interval_s = interval_s
        self._last: dict[tuple[str, ...], float] = {}
        self._suppressed: dict[tuple[str, ...], int] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        kind = tuple(message.split(" ", 2)[:2])
        with self._lock:
            now = time.monotonic()
            last = self._last.get(kind)
            if last is not None and now - last < self.interval_s:
                self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
                return False
            self._last[kind] = now
            suppressed = self._suppressed.pop(kind, 0)
        if suppressed:
            record.msg, record.args = f"{message} ({suppressed} similar suppressed)", None
        return True
