"""Unit tests of aliecs_integration.monitoring.collector with fake sources: every family of the
table and nothing else, the values read at scrape time, parsed by prometheus-client's own
parser."""

from __future__ import annotations

from types import MappingProxyType

import pytest
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import DuplicateTimeseries

from aliecs_integration.engine.fsm import State
from aliecs_integration.host import PluginStatus
from aliecs_integration.monitoring.collector import (
    METRICS,
    AliecsCollector,
    registry_for,
    static_watch_status,
)
from aliecs_integration.publish.metrics import LATENCY_BUCKETS, Metrics
from aliecs_integration.records import ConnectionState
from aliecs_integration.settings.watch import WatchStatus

from .fakes import FakeEnvironments, FakeHost

WEIRD = 'we"ird\\topic\nx'


def scrape(collector: AliecsCollector) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Sample name -> (sorted labels -> value), from the text prometheus-client writes and
    parses back."""
    text = generate_latest(registry_for(collector)).decode()
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def families(collector: AliecsCollector) -> dict[str, str]:
    text = generate_latest(registry_for(collector)).decode()
    return {f.name: f.type for f in text_string_to_metric_families(text)}


def publisher_metrics() -> Metrics:
    m = Metrics(sample_every=1)
    for _ in range(5):
        m.count_published("aliecs.run")
    m.record_sent("aliecs.run", 0.003)
    m.record_sent("aliecs.run", 0.2)
    m.record_failed("aliecs.run")
    m.record_dropped("aliecs.run")
    m.count_published(WEIRD)
    m.set_queue_depth_source(lambda: 4)
    return m


def full_sources() -> tuple[FakeHost, FakeEnvironments]:
    host = FakeHost(
        snapshots={"core-kafka": publisher_metrics().snapshot()},
        plugins=[PluginStatus("core-kafka", "Core", True, state="READY"),
                 PluginStatus("trg", "Trigger", True, state="UNKNOWN"),
                 PluginStatus("dcs", "DCS", False, reason="not named")],
        failure_counts={"trg": 3}, slow={"trg": 2},
        spools={"core-kafka": {"entries": 7, "bytes": 700, "replayed": 0, "trimmed": 0}})
    envs = FakeEnvironments({"RUNNING": 2, "PENDING": 1}, runs=2)
    return host, envs


def test_every_family_of_the_table_is_exposed_with_its_type_and_nothing_else() -> None:
    host, envs = full_sources()
    watch = WatchStatus("consul://c/key", reachable=False, applied=1, refused=2, watch_errors=3)
    exposed = families(AliecsCollector(host, envs, lambda: watch))
    # the parser names counters without their _total suffix
    wanted = {m.name.removesuffix("_total") if m.kind == "counter" else m.name: m.kind
              for m in METRICS}
    assert exposed == wanted


def test_per_topic_counts_pending_and_latency() -> None:
    host, envs = full_sources()
    s = scrape(AliecsCollector(host, envs, static_watch_status("file.yaml")))
    run = (("plugin", "core-kafka"), ("topic", "aliecs.run"))
    assert s["aliecs_kafka_messages_published_total"][run] == 5
    assert s["aliecs_kafka_messages_acknowledged_total"][run] == 2
    assert s["aliecs_kafka_messages_failed_total"][run] == 1
    assert s["aliecs_kafka_messages_dropped_total"][run] == 1
    assert s["aliecs_kafka_messages_pending"][run] == 1
    weird = (("plugin", "core-kafka"), ("topic", WEIRD))  # escaped and parsed back intact
    assert s["aliecs_kafka_messages_published_total"][weird] == 1
    assert s["aliecs_kafka_messages_pending"][weird] == 1
    buckets = s["aliecs_kafka_delivery_latency_seconds_bucket"]
    at = {dict(k)["le"]: v for k, v in buckets.items() if dict(k)["topic"] == "aliecs.run"}
    assert len(at) == len(LATENCY_BUCKETS) + 1
    assert (at["0.001"], at["0.005"], at["0.25"], at["+Inf"]) == (0, 1, 2, 2)
    assert s["aliecs_kafka_delivery_latency_seconds_count"][run] == 2
    assert s["aliecs_kafka_delivery_latency_seconds_sum"][run] == pytest.approx(0.203)
    recent = s["aliecs_kafka_delivery_latency_recent_seconds"]
    assert recent[(*run[:1], ("quantile", "0.99"), run[1])] == pytest.approx(0.2)
    assert s["aliecs_kafka_delivery_latency_max_seconds"][run] == pytest.approx(0.2)
    assert s["aliecs_kafka_queue_messages"][(("plugin", "core-kafka"),)] == 4
    assert s["aliecs_kafka_spool_messages"][(("plugin", "core-kafka"),)] == 7
    assert s["aliecs_kafka_spool_bytes"][(("plugin", "core-kafka"),)] == 700


def test_plugins_environments_and_settings() -> None:
    host, envs = full_sources()
    watch = WatchStatus("consul://c/key", reachable=False, applied=1, refused=2, watch_errors=3)
    s = scrape(AliecsCollector(host, envs, lambda: watch))
    loaded = {dict(k)["plugin"]: v for k, v in s["aliecs_plugin_loaded"].items()}
    assert loaded == {"core-kafka": 1, "trg": 1, "dcs": 0}
    states = {(dict(k)["plugin"], dict(k)["state"]): v for k, v in s["aliecs_plugin_state"].items()}
    assert {k for k, v in states.items() if v == 1} == {("core-kafka", "READY"), ("trg", "UNKNOWN")}
    assert len(states) == 2 * len(ConnectionState)  # every state of each loaded plugin, no dcs
    failures = {dict(k)["plugin"]: v for k, v in s["aliecs_plugin_hook_failures_total"].items()}
    assert failures == {"core-kafka": 0, "trg": 3}
    slow = {dict(k)["plugin"]: v for k, v in s["aliecs_plugin_slow_hooks_total"].items()}
    assert slow == {"core-kafka": 0, "trg": 2}
    by_state = {dict(k)["state"]: v for k, v in s["aliecs_environments"].items()}
    assert by_state == {**{state.value: 0 for state in State}, "RUNNING": 2, "PENDING": 1}
    assert s["aliecs_active_runs"][()] == 2
    reloads = {dict(k)["result"]: v for k, v in s["aliecs_settings_reloads_total"].items()}
    assert reloads == {"applied": 1, "refused": 2}
    assert s["aliecs_settings_watch_errors_total"][()] == 3
    assert s["aliecs_settings_source_reachable"][()] == 0


def test_static_watch_status_exists_with_zeros() -> None:
    s = scrape(AliecsCollector(FakeHost(), None, static_watch_status("settings.yaml")))
    reloads = {dict(k)["result"]: v for k, v in s["aliecs_settings_reloads_total"].items()}
    assert reloads == {"applied": 0, "refused": 0}
    assert s["aliecs_settings_watch_errors_total"][()] == 0
    assert s["aliecs_settings_source_reachable"][()] == 1
    # no environment manager: the environment families are absent, not zero
    assert "aliecs_environments" not in s and "aliecs_active_runs" not in s


def test_values_are_read_at_each_scrape_not_before() -> None:
    m = Metrics()
    host = FakeHost(snapshots={"core-kafka": m.snapshot()})
    envs = FakeEnvironments()
    collector = AliecsCollector(host, envs, static_watch_status("f"))
    assert "aliecs_kafka_messages_published_total" not in scrape(collector)
    m.count_published("aliecs.core")
    host.snapshots = {"core-kafka": m.snapshot()}
    envs.runs = 1
    s = scrape(collector)
    key = (("plugin", "core-kafka"), ("topic", "aliecs.core"))
    assert s["aliecs_kafka_messages_published_total"][key] == 1
    assert s["aliecs_active_runs"][()] == 1


def test_own_registry_not_the_global_one() -> None:
    collector = AliecsCollector(FakeHost(), None, static_watch_status("f"))
    registry = registry_for(collector)
    assert b"aliecs_" not in generate_latest(REGISTRY)
    with pytest.raises(DuplicateTimeseries):  # describe() names the families
        registry.register(AliecsCollector(FakeHost(), None, static_watch_status("f")))


def test_snapshots_are_not_changed_by_a_scrape() -> None:
    snap = publisher_metrics().snapshot()
    host = FakeHost(snapshots={"core-kafka": snap})
    scrape(AliecsCollector(host, None, static_watch_status("f")))
    assert isinstance(snap.topics, MappingProxyType)
    assert snap.topics["aliecs.run"].published == 5
