"""Producer metrics: messages published, sent, failed, dropped, queue depth, delivery latency
per topic.

:class:`Metrics` is thread-safe, and its counts are exact. The delivery path is kept cheap:

- :meth:`Metrics.count_sent` (once per acknowledged message, on the delivery-report thread)
  and :attr:`Metrics.count_published` (once per message offered to the publisher) only append
  the topic to a list (atomic under CPython's GIL). :meth:`Metrics.fold` adds those lists to
  the per-topic counters; every snapshot folds first, so a snapshot is exact. Whoever calls
  ``count_*`` must call ``fold`` regularly (the publisher's poller does after each poll) to
  keep the lists short.
- When the publisher counts deliveries from librdkafka's statistics (idempotence on, see
  :mod:`aliecs_integration.publish.delivery_tracker`), no call is made per acknowledged
  message: :meth:`Metrics.raise_sent` raises each topic's count to a lower bound known to be
  acknowledged, and :meth:`Metrics.record_latency_window` records the latency of each
  statistics window (p50, p99 and maximum of the topic's leader broker); the snapshot's
  p50/p99 are then those of the last window.
- Otherwise delivery latency is sampled per topic: the first acknowledged message of each
  topic, then one in ``sample_every`` (default 16).

Samples feed histogram buckets (cumulative since start: they count samples, not every
delivery), the maximum, and a ring of the last ``reservoir_size`` samples from which the
snapshot's p50/p99 are computed (when no statistics window set them).

This module only counts; :mod:`aliecs_integration.monitoring.collector` exposes the
snapshots in the Prometheus format, read at scrape time (no cost per message).
"""

from __future__ import annotations

import bisect
import collections
import threading
from collections.abc import Callable, Collection, Mapping, Sequence
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
_bisect = bisect.bisect_left


@attrs.frozen
class LatencySummary:
    """Delivery latency of one topic: ``count`` deliveries since start (exact), ``samples``
    of them whose latency was sampled; ``p50_s``/``p99_s`` over the most recent samples (the
    reservoir); ``max_s`` over every sample since start."""

    count: int = 0
    p50_s: float = 0.0
    p99_s: float = 0.0
    max_s: float = 0.0
    samples: int = 0
    buckets: tuple[int, ...] = ()
    """Samples per bucket of :data:`LATENCY_BUCKETS` (not cumulative), the last one past the
    largest bound (``+Inf``); empty when nothing was sampled."""
    sum_s: float = 0.0
    """The sum of every sampled latency."""


@attrs.frozen
class TopicMetrics:
    """Counters of one topic since start. ``published``: messages offered to the publisher
    (refused and dropped ones included), so ``published - sent - failed - dropped`` is the
    number of this topic's messages not settled yet (held, or abandoned at close)."""

    sent: int = 0
    failed: int = 0
    dropped: int = 0
    latency: LatencySummary = LatencySummary()
    published: int = 0


@attrs.frozen
class MetricsSnapshot:
    """Totals over all topics, the queue depth at the time of the snapshot, and each topic."""

    sent: int = 0
    failed: int = 0
    dropped: int = 0
    queued: int = 0
    topics: Mapping[str, TopicMetrics] = attrs.field(factory=lambda: MappingProxyType({}))
    published: int = 0


class _Topic:
    __slots__ = (
        "buckets",
        "dropped",
        "failed",
        "latency_sum",
        "max",
        "published",
        "ring",
        "ring_pos",
        "samples",
        "sent",
        "window",
    )

    def __init__(self) -> None:
        self.sent = self.failed = self.dropped = self.published = self.samples = 0
        self.buckets = [0] * (len(LATENCY_BUCKETS) + 1)
        self.latency_sum = 0.0
        self.max = 0.0
        self.ring: list[float] = []
        self.ring_pos = 0
        self.window: tuple[float, float] | None = None  # p50, p99 of the last statistics

    def summary(self) -> LatencySummary:
        p50, p99 = self.window if self.window is not None else self._ring_quantiles()
        return LatencySummary(
            count=self.sent,
            p50_s=p50,
            p99_s=p99,
            max_s=self.max,
            samples=self.samples,
            buckets=tuple(self.buckets) if self.samples else (),
            sum_s=self.latency_sum,
        )

    def _ring_quantiles(self) -> tuple[float, float]:
        if not self.ring:
            return 0.0, 0.0
        ordered = sorted(self.ring)
        last = len(ordered) - 1
        return ordered[round(0.50 * last)], ordered[round(0.99 * last)]


class Metrics:
    """Thread-safe producer counters (see the module docstring for the cheap delivery path).
    ``queue_depth`` (set by the publisher) reports how many messages are held and not yet
    delivered; it is read at each snapshot. Raises ``ValueError`` for a ``reservoir_size`` or
    ``sample_every`` below 1."""

    def __init__(self, *, reservoir_size: int = 1024, sample_every: int = 16) -> None:
        if reservoir_size < 1:
            raise ValueError(f"reservoir_size {reservoir_size}: expected >= 1")
        if sample_every < 1:
            raise ValueError(f"sample_every {sample_every}: expected >= 1")
        self._size, self._every = reservoir_size, sample_every
        self._lock = threading.Lock()
        self._topics: dict[str, _Topic] = {}
        self._queue_depth: Callable[[], int] = lambda: 0
        self._acked: list[str] = []  # topics of acknowledged messages not folded yet
        self._offered: list[str] = []  # topics of published messages not folded yet
        self._countdown: dict[str, int] = {}  # per topic: deliveries until the next sample
        self.count_published: Callable[[str], None] = self._offered.append
        """Count one message offered to the publisher for a topic (exact after :meth:`fold`)."""

    def set_queue_depth_source(self, source: Callable[[], int]) -> None:
        """Use ``source()`` as the queue depth in snapshots."""
        self._queue_depth = source

    def _topic(self, topic: str) -> _Topic:
        entry = self._topics.get(topic)
        if entry is None:
            entry = self._topics[topic] = _Topic()
        return entry

    def count_sent(self, topic: str) -> bool:
        """Count one acknowledged message of ``topic`` (exact after :meth:`fold`). True when
        its latency is to be sampled: then pass it to :meth:`sample_latency`."""
        self._acked.append(topic)
        left = self._countdown.get(topic, 0)
        if left:
            self._countdown[topic] = left - 1
            return False
        self._countdown[topic] = self._every - 1
        return True

    def sample_latency(self, topic: str, latency_s: float) -> None:
        """Record one sampled delivery latency of ``topic`` (histogram, maximum, reservoir)."""
        index = _bisect(LATENCY_BUCKETS, latency_s)
        with self._lock:
            t = self._topics.get(topic) or self._topic(topic)
            t.samples += 1
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

    def record_sent(self, topic: str, latency_s: float) -> None:
        """One message of ``topic`` was acknowledged ``latency_s`` seconds after it was queued
        (counted at once; the latency sampled like :meth:`count_sent`'s)."""
        sample = self.count_sent(topic)
        self.fold()
        if sample:
            self.sample_latency(topic, latency_s)

    def raise_sent(self, totals: Mapping[str, int]) -> None:
        """Each topic of ``totals`` has at least that many acknowledged messages: raise its
        count to it (counts never go down)."""
        with self._lock:
            for topic, total in totals.items():
                if total > 0:
                    t = self._topics.get(topic) or self._topic(topic)
                    if total > t.sent:
                        t.sent = total

    def outcomes(self) -> dict[str, tuple[int, int, int, int]]:
        """Per topic: (published, sent, failed, dropped), after a fold."""
        with self._lock:
            self._fold()
            return {
                name: (t.published, t.sent, t.failed, t.dropped)
                for name, t in self._topics.items()
            }

    def record_latency_window(self, topic: str, p50_s: float, p99_s: float, max_s: float) -> None:
        """The delivery latency of ``topic`` over one statistics window: its p50 is one
        sample (histogram, reservoir); p50/p99 become the snapshot's; the maximum counts."""
        self.sample_latency(topic, p50_s)
        with self._lock:
            t = self._topics.get(topic) or self._topic(topic)
            t.window = (p50_s, p99_s)
            if max_s > t.max:
                t.max = max_s

    def record_failed(self, topic: str, count: int = 1) -> None:
        """``count`` messages of ``topic`` were reported failed by the client."""
        with self._lock:
            self._topic(topic).failed += count

    def record_dropped(self, topic: str, count: int = 1) -> None:
        """``count`` messages of ``topic`` were dropped by the overflow policy or refused."""
        with self._lock:
            self._topic(topic).dropped += count

    def fold(self) -> None:
        """Add the messages counted by :meth:`count_sent` and :attr:`count_published` since
        the last fold to the per-topic counters."""
        if self._acked or self._offered:
            with self._lock:
                self._fold()

    def _fold(self) -> None:
        # Lock held. Appends may go on meanwhile: take exactly the first n entries. Outcomes
        # first: a message is counted as published before it can be acknowledged, so a
        # snapshot never shows more settled messages than published ones.
        for pending, field in ((self._acked, "sent"), (self._offered, "published")):
            n = len(pending)
            if n:
                chunk = pending[:n]
                del pending[:n]
                for topic, count in collections.Counter(chunk).items():
                    t = self._topics.get(topic) or self._topic(topic)
                    setattr(t, field, getattr(t, field) + count)

    def snapshot(self) -> MetricsSnapshot:
        """A consistent copy of every counter, plus the current queue depth."""
        queued = self._queue_depth()
        with self._lock:
            self._fold()
            topics = {
                name: TopicMetrics(
                    sent=t.sent,
                    failed=t.failed,
                    dropped=t.dropped,
                    latency=t.summary(),
                    published=t.published,
                )
                for name, t in sorted(self._topics.items())
            }
        return MetricsSnapshot(
            sent=sum(t.sent for t in topics.values()),
            failed=sum(t.failed for t in topics.values()),
            dropped=sum(t.dropped for t in topics.values()),
            queued=queued,
            topics=MappingProxyType(topics),
            published=sum(t.published for t in topics.values()),
        )


def _add_buckets(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    if not a or not b:
        return a or b
    return tuple(x + y for x, y in zip(a, b, strict=True))


def only_topics(snapshot: MetricsSnapshot, topics: Collection[str]) -> MetricsSnapshot:
    """``snapshot`` restricted to ``topics`` (totals over those; the queue depth unchanged)."""
    kept = {name: t for name, t in snapshot.topics.items() if name in topics}
    return MetricsSnapshot(
        sent=sum(t.sent for t in kept.values()), failed=sum(t.failed for t in kept.values()),
        dropped=sum(t.dropped for t in kept.values()), queued=snapshot.queued,
        topics=MappingProxyType(kept), published=sum(t.published for t in kept.values()))


def merged(snapshots: Sequence[MetricsSnapshot]) -> MetricsSnapshot:
    """One snapshot adding up the counts of ``snapshots`` (publishers used one after the
    other, e.g. before and after a live settings change): per topic, ``published``, ``sent``,
    ``failed``, ``dropped``, the latency count, samples, buckets and sum are summed (so
    counters never go down), the maximum latency is the largest, p50/p99 are the last
    snapshot's that has the topic; ``queued`` is the last snapshot's."""
    topics: dict[str, TopicMetrics] = {}
    for snap in snapshots:
        for name, t in snap.topics.items():
            before = topics.get(name)
            if before is None:
                topics[name] = t
                continue
            a, b = before.latency, t.latency
            latency = attrs.evolve(
                b, count=a.count + b.count, samples=a.samples + b.samples,
                max_s=max(a.max_s, b.max_s), buckets=_add_buckets(a.buckets, b.buckets),
                sum_s=a.sum_s + b.sum_s)
            topics[name] = TopicMetrics(
                sent=before.sent + t.sent, failed=before.failed + t.failed,
                dropped=before.dropped + t.dropped, latency=latency,
                published=before.published + t.published)
    ordered = dict(sorted(topics.items()))
    return MetricsSnapshot(
        sent=sum(t.sent for t in ordered.values()),
        failed=sum(t.failed for t in ordered.values()),
        dropped=sum(t.dropped for t in ordered.values()),
        queued=snapshots[-1].queued if snapshots else 0,
        topics=MappingProxyType(ordered),
        published=sum(t.published for t in ordered.values()),
    )
