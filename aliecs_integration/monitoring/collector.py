"""Our counters in the Prometheus form: one custom collector, read at scrape time.

:class:`AliecsCollector` keeps no metric objects of its own and adds nothing to the delivery
path: every scrape asks the sources for what they already count (the publishers' per-topic
snapshots through :meth:`PluginHost.metrics <aliecs_integration.host.PluginHost.metrics>`, the
plugin list and hook counts, the environments by state, the settings watch) and turns the
answers into metric families. It is registered in a :class:`~prometheus_client.CollectorRegistry`
of its own (:func:`registry_for`), never in prometheus-client's global one.

:data:`METRICS` lists every family the collector can yield (name, type, labels, meaning); the
generated ``docs/metrics.md`` is rendered from it, and a test holds the collector to it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Protocol

import attrs
from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from aliecs_integration.engine.fsm import State
from aliecs_integration.host import PluginFailure, PluginStatus
from aliecs_integration.publish.metrics import LATENCY_BUCKETS, MetricsSnapshot
from aliecs_integration.records import ConnectionState
from aliecs_integration.settings.watch import WatchStatus


class HostView(Protocol):
    """What the collector reads of the plugin host
    (:class:`~aliecs_integration.host.PluginHost`)."""

    def metrics(self) -> Mapping[str, MetricsSnapshot]: ...

    def list_plugins(self) -> Sequence[PluginStatus]: ...

    def failures(self) -> Mapping[str, tuple[int, PluginFailure]]: ...

    def slow_hooks(self) -> Mapping[str, int]: ...

    def spool_stats(self) -> Mapping[str, Mapping[str, int]]: ...


class EnvironmentsView(Protocol):
    """What the collector reads of the environment manager
    (:class:`~aliecs_integration.engine.manager.EnvironmentManager`)."""

    def count_by_state(self) -> Mapping[str, int]: ...

    def active_runs(self) -> int: ...


WatchSource = Callable[[], WatchStatus]
"""A zero-argument callable returning the settings watch's status now."""


@attrs.frozen
class MetricSpec:
    """One metric family: its name as exposed (counters end in ``_total``), type, label
    names and meaning."""

    name: str
    kind: str
    labels: tuple[str, ...]
    help: str


_TOPIC = ("plugin", "topic")
METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("aliecs_kafka_messages_published_total", "counter", _TOPIC,
               "Messages offered to the plugin's publisher (refused and dropped ones included)."),
    MetricSpec("aliecs_kafka_messages_acknowledged_total", "counter", _TOPIC,
               "Messages acknowledged by the broker (from librdkafka's statistics, exact "
               "whenever nothing is outstanding, otherwise at most one statistics interval "
               "behind)."),
    MetricSpec("aliecs_kafka_messages_failed_total", "counter", _TOPIC,
               "Messages the Kafka client reported as failed for good."),
    MetricSpec("aliecs_kafka_messages_dropped_total", "counter", _TOPIC,
               "Messages dropped by the overflow policy or refused by the publisher."),
    MetricSpec("aliecs_kafka_messages_pending", "gauge", _TOPIC,
               "Messages published and not settled yet: published - acknowledged - failed - "
               "dropped."),
    MetricSpec("aliecs_kafka_delivery_latency_seconds", "histogram", _TOPIC,
               "Time from publish to broker acknowledgement, sampled (one sample per "
               "statistics window, or the first delivery of each topic and then one in 16); "
               "_count and _sum are over samples, not over every delivery."),
    MetricSpec("aliecs_kafka_delivery_latency_recent_seconds", "gauge", (*_TOPIC, "quantile"),
               "Delivery latency quantile (0.5, 0.99) of the last statistics window or of the "
               "most recent samples."),
    MetricSpec("aliecs_kafka_delivery_latency_max_seconds", "gauge", _TOPIC,
               "The largest delivery latency seen since start."),
    MetricSpec("aliecs_kafka_queue_messages", "gauge", ("plugin",),
               "Messages held by the plugin's publisher and not yet delivered (its queue and "
               "librdkafka's)."),
    MetricSpec("aliecs_kafka_spool_messages", "gauge", ("plugin",),
               "Messages journaled in the on-disk spool and not acknowledged yet (only when "
               "kafkaProducer.spool is on)."),
    MetricSpec("aliecs_kafka_spool_bytes", "gauge", ("plugin",),
               "Bytes of those journaled messages (only when the spool is on)."),
    MetricSpec("aliecs_plugin_loaded", "gauge", ("plugin",),
               "1 when the discovered or requested plugin is loaded, 0 when it is not."),
    MetricSpec("aliecs_plugin_state", "gauge", ("plugin", "state"),
               "1 for the loaded plugin's connection state now, 0 for the other states "
               "(READY, CONNECTING, TRANSIENT_FAILURE, IDLE, SHUTDOWN, UNKNOWN)."),
    MetricSpec("aliecs_plugin_hook_failures_total", "counter", ("plugin",),
               "Hook calls of the plugin that raised."),
    MetricSpec("aliecs_plugin_slow_hooks_total", "counter", ("plugin",),
               "Hook calls of the plugin that took longer than the host's slow-hook threshold "
               "(0.5 s)."),
    MetricSpec("aliecs_environments", "gauge", ("state",),
               "Environments in each state now (PENDING: being created)."),
    MetricSpec("aliecs_active_runs", "gauge", (),
               "Environments with a run in progress (Start of Run done, End of Run not yet)."),
    MetricSpec("aliecs_settings_reloads_total", "counter", ("result",),
               "New settings documents since start: applied, or refused (invalid; the running "
               "settings stayed)."),
    MetricSpec("aliecs_settings_watch_errors_total", "counter", (),
               "Failed reads of the settings source by the settings watch."),
    MetricSpec("aliecs_settings_source_reachable", "gauge", (),
               "1 when the last read of the settings source succeeded, 0 when it failed."),
)
"""Every metric family :class:`AliecsCollector` yields, in the order it yields them."""

_SPEC = {spec.name: spec for spec in METRICS}
_STATES = tuple(s.value for s in ConnectionState)
_ENV_STATES = tuple(s.value for s in State)
_LE = (*(repr(bound) for bound in LATENCY_BUCKETS), "+Inf")


def _family(name: str) -> Metric:
    spec = _SPEC[name]
    labels = list(spec.labels)
    if spec.kind == "counter":
        return CounterMetricFamily(name, spec.help, labels=labels)
    if spec.kind == "histogram":
        return HistogramMetricFamily(name, spec.help, labels=labels)
    return GaugeMetricFamily(name, spec.help, labels=labels)


def _add(family: Metric, labels: Sequence[str], value: float) -> None:
    family.add_metric(labels, value)  # type: ignore[attr-defined]


class AliecsCollector:
    """Reads ``host``, ``environments`` and ``watch_status()`` at each :meth:`collect`.

    ``environments`` may be None (no environment manager: the environment metrics are then
    absent). Each scrape costs one snapshot per publisher and a pass over the environments;
    nothing runs between scrapes.
    """

    def __init__(self, host: HostView, environments: EnvironmentsView | None,
                 watch_status: WatchSource) -> None:
        self._host = host
        self._environments = environments
        self._watch_status = watch_status

    def describe(self) -> Iterator[Metric]:
        """The families without samples (lets a registry refuse a clashing collector)."""
        for spec in METRICS:
            yield _family(spec.name)

    def collect(self) -> Iterator[Metric]:
        """Every family of :data:`METRICS` (the environment ones only with a manager), with
        the sources' values now."""
        families = {spec.name: _family(spec.name) for spec in METRICS}
        self._topics(families)
        self._plugins(families)
        self._environments_now(families)
        self._settings(families)
        for spec in METRICS:
            if spec.name.startswith(("aliecs_environments", "aliecs_active_runs")) and (
                    self._environments is None):
                continue
            yield families[spec.name]

    def _topics(self, f: Mapping[str, Metric]) -> None:
        for plugin, snap in sorted(self._host.metrics().items()):
            _add(f["aliecs_kafka_queue_messages"], [plugin], snap.queued)
            for topic, t in snap.topics.items():
                labels = [plugin, topic]
                _add(f["aliecs_kafka_messages_published_total"], labels, t.published)
                _add(f["aliecs_kafka_messages_acknowledged_total"], labels, t.sent)
                _add(f["aliecs_kafka_messages_failed_total"], labels, t.failed)
                _add(f["aliecs_kafka_messages_dropped_total"], labels, t.dropped)
                pending = max(0, t.published - t.sent - t.failed - t.dropped)
                _add(f["aliecs_kafka_messages_pending"], labels, pending)
                latency = t.latency
                buckets = latency.buckets or (0,) * len(_LE)
                cumulative, rows = 0, []
                for le, count in zip(_LE, buckets, strict=True):
                    cumulative += count
                    rows.append((le, float(cumulative)))
                f["aliecs_kafka_delivery_latency_seconds"].add_metric(  # type: ignore[attr-defined]
                    labels, rows, latency.sum_s)
                recent = f["aliecs_kafka_delivery_latency_recent_seconds"]
                _add(recent, [*labels, "0.5"], latency.p50_s)
                _add(recent, [*labels, "0.99"], latency.p99_s)
                _add(f["aliecs_kafka_delivery_latency_max_seconds"], labels, latency.max_s)
        for plugin, stats in sorted(self._host.spool_stats().items()):
            _add(f["aliecs_kafka_spool_messages"], [plugin], stats.get("entries", 0))
            _add(f["aliecs_kafka_spool_bytes"], [plugin], stats.get("bytes", 0))

    def _plugins(self, f: Mapping[str, Metric]) -> None:
        failures = self._host.failures()
        slow = self._host.slow_hooks()
        for status in self._host.list_plugins():
            name = status.name
            _add(f["aliecs_plugin_loaded"], [name], 1 if status.loaded else 0)
            if not status.loaded:
                continue
            for state in _STATES:
                _add(f["aliecs_plugin_state"], [name, state], 1 if state == status.state else 0)
            count, _last = failures.get(name, (0, None))
            _add(f["aliecs_plugin_hook_failures_total"], [name], count)
            _add(f["aliecs_plugin_slow_hooks_total"], [name], slow.get(name, 0))

    def _environments_now(self, f: Mapping[str, Metric]) -> None:
        if self._environments is None:
            return
        counts = dict(self._environments.count_by_state())
        for state in sorted({*_ENV_STATES, *counts}):
            _add(f["aliecs_environments"], [state], counts.get(state, 0))
        _add(f["aliecs_active_runs"], [], self._environments.active_runs())

    def _settings(self, f: Mapping[str, Metric]) -> None:
        watch = self._watch_status()
        _add(f["aliecs_settings_reloads_total"], ["applied"], watch.applied)
        _add(f["aliecs_settings_reloads_total"], ["refused"], watch.refused)
        _add(f["aliecs_settings_watch_errors_total"], [], watch.watch_errors)
        _add(f["aliecs_settings_source_reachable"], [], 1 if watch.reachable else 0)


def registry_for(collector: AliecsCollector) -> CollectorRegistry:
    """A registry of its own holding only ``collector`` (prometheus-client's global registry,
    with its process and platform collectors, is left alone)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry


def static_watch_status(source: str) -> WatchSource:
    """The watch status of settings read once from ``source`` and never watched: reachable
    (they were read), nothing applied, refused or failed since."""
    status = WatchStatus(source=source)
    return lambda: status
