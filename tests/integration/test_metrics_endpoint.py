"""The monitoring endpoint against the real broker: a scrape of ``/metrics`` during a ``run``
(a real process), parsed by prometheus-client's own parser, counts per topic exactly what the
reader reads back from Kafka; ``/healthz`` says healthy with the broker up and 503 with an
unreachable broker."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from confluent_kafka.admin import AdminClient
from prometheus_client.parser import text_string_to_metric_families

from aliecs_integration.publish.reader import read_back
from aliecs_integration.service.server import ControlServer
from aliecs_integration.settings.core import Settings
from tests.kafka_helpers import existing_topics

REPO = Path(__file__).resolve().parents[2]
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str) -> Samples:
    with urllib.request.urlopen(f"{url}/metrics", timeout=30) as response:
        text = response.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def healthz(url: str) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def per_topic(samples: Samples, name: str) -> dict[str, float]:
    return {dict(labels)["topic"]: value for (n, labels), value in samples.items() if n == name}


@pytest.fixture
def cleanup_topics(kafka_bootstrap: str, topic_prefix: str) -> Iterator[None]:
    yield
    topics = existing_topics(kafka_bootstrap, topic_prefix)
    if topics:
        admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
        for future in admin.delete_topics(topics, operation_timeout=30).values():
            future.result()


def settled(samples: Samples) -> bool:
    """Every message published is acknowledged, one run is active, the environments are where
    the scenario holds them (both sleeping)."""
    published = per_topic(samples, "aliecs_kafka_messages_published_total")
    acknowledged = per_topic(samples, "aliecs_kafka_messages_acknowledged_total")
    pending = per_topic(samples, "aliecs_kafka_messages_pending")
    return (bool(published) and published == acknowledged and not any(pending.values())
            and samples.get(("aliecs_active_runs", ())) == 1
            and samples.get(("aliecs_environments", (("state", "RUNNING"),))) == 1
            and samples.get(("aliecs_environments", (("state", "DEPLOYED"),))) == 1)


def by_plugin(samples: Samples, name: str) -> dict[str, set[str]]:
    """The topics of metric ``name``, by the plugin label carrying them."""
    found: dict[str, set[str]] = {}
    for (n, labels), _ in samples.items():
        if n == name:
            found.setdefault(dict(labels)["plugin"], set()).add(dict(labels)["topic"])
    return found


@pytest.mark.parametrize("legacy_producer", ["shared", "own"])
def test_scrape_during_a_run_equals_what_kafka_holds(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path, cleanup_topics: None,
    legacy_producer: str,
) -> None:
    """With the legacy plugin on core-kafka's producer (same endpoint) or on one of its own
    (the same broker named differently): every topic is counted once, under the plugin whose
    producer published it, and the counts are what Kafka holds."""
    host, port = kafka_bootstrap.rsplit(":", 1)
    legacy_endpoint = kafka_bootstrap if legacy_producer == "shared" else f"localhost:{port}"
    assert host == "127.0.0.1"
    settings = tmp_path / "settings.yaml"
    settings.write_text(yaml.safe_dump({
        "kafkaEndpoints": [kafka_bootstrap], "kafkaEndpoint": legacy_endpoint,
        "integrationPlugins": ["kafka", "trg"],
        "kafkaProducer": {"topicRoot": topic_prefix, "topics": {"replicationFactor": 1}},
    }))
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(yaml.safe_dump({"environments": [
        {"id": "physics", "detectors": ["TPC"], "variables": {"kafka_enabled": "true"},
         "actions": ["DEPLOY", "CONFIGURE", "START_ACTIVITY", {"sleep": 300}, "destroy"]},
        {"id": "standby", "detectors": ["ITS"],
         "actions": ["DEPLOY", {"sleep": 300}, "destroy"]},
    ]}))
    proc = subprocess.Popen(
        [sys.executable, "-m", "aliecs_integration", "run", "--settings", str(settings),
         "--scenario", str(scenario), "--run-numbers", str(tmp_path / "rn"),
         "--metrics-address", "127.0.0.1:0", "--flush-timeout", "10"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            output.append(line)
            if line.startswith("metrics on http://"):
                break
        else:
            pytest.fail("run never said where it serves metrics:\n" + "".join(output))
        url = line.split()[2].rstrip(",").removesuffix("/metrics")

        deadline = time.monotonic() + 120
        samples = scrape(url)
        while not settled(samples):
            assert time.monotonic() < deadline, f"never settled: {samples}"
            time.sleep(0.5)
            samples = scrape(url)
        status, body = healthz(url)
        assert status == 200, body
        assert body["producer"] == {"ok": True, "plugins": {"core-kafka": "READY",
                                                            "kafka": "READY"}}

        acknowledged = per_topic(samples, "aliecs_kafka_messages_acknowledged_total")
        legacy = f"{topic_prefix}.env_list.RUNNING"
        assert {f"{topic_prefix}.environment", f"{topic_prefix}.run", legacy} <= set(
            acknowledged)
        plugins = by_plugin(samples, "aliecs_kafka_messages_acknowledged_total")
        core = {f"{topic_prefix}.{name}" for name in ("environment", "run", "call", "role",
                                                         "task", "core")}
        legacy_topics = {t for t in acknowledged
                         if t not in core and ".integrated_service." not in t}
        assert legacy in legacy_topics and f"{topic_prefix}.before_start_activity" in legacy_topics
        if legacy_producer == "shared":
            assert set(plugins) == {"core-kafka"}
        else:
            assert plugins["kafka"] == legacy_topics
            assert not plugins["core-kafka"] & legacy_topics
        read = read_back(kafka_bootstrap, sorted(acknowledged), {}, root=topic_prefix,
                         timeout_s=30)
        assert all(item.ok for item in read)
        assert Counter(item.topic for item in read) == {t: int(v) for t, v in
                                                        acknowledged.items()}
        # and the `consume` command reads back the same counts
        consumed = subprocess.run(
            [sys.executable, "-m", "aliecs_integration", "consume", *sorted(acknowledged),
             "--settings", str(settings), "--from-beginning", "--format", "json"],
            cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
        assert consumed.returncode == 0, consumed.stderr
        lines = [json.loads(x) for x in consumed.stdout.splitlines() if x.strip()]
        assert all("message" in x for x in lines)
        assert Counter(x["topic"] for x in lines) == {t: int(v) for t, v in acknowledged.items()}
        # the scrape is consistent with itself: nothing failed or was dropped
        assert not any(per_topic(samples, "aliecs_kafka_messages_failed_total").values())
        assert samples[("aliecs_plugin_state", (("plugin", "core-kafka"), ("state", "READY")))
                       ] == 1
        assert samples[("aliecs_settings_source_reachable", ())] == 1
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            rest, _ = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            rest, _ = proc.communicate()
        output.append(rest or "")
    assert proc.returncode == 143, "".join(output)
    with pytest.raises(urllib.error.URLError):  # the endpoint stopped with the command
        urllib.request.urlopen(f"{url}/healthz", timeout=5)


def test_healthz_is_503_while_the_broker_is_unreachable(tmp_path: Path) -> None:
    settings = Settings.from_dict({"kafkaEndpoints": ["127.0.0.1:1"],
                                   "kafkaProducer": {"flushTimeoutSeconds": 1}},
                                  source="unreachable.yaml")
    server = ControlServer(settings, address="127.0.0.1:0", run_numbers=tmp_path / "rn",
                           metrics_address="127.0.0.1:0")
    server.start()
    try:
        assert server.monitoring is not None
        status, body = healthz(server.monitoring.url)
        samples = scrape(server.monitoring.url)
    finally:
        server.shutdown(drain_timeout_s=1, flush_timeout_s=1, grace_s=0.1)
    assert status == 503, body
    state = body["producer"]["plugins"]["core-kafka"]  # type: ignore[index]
    assert state in ("CONNECTING", "TRANSIENT_FAILURE")
    assert body["problems"] == [f"producer of plugin core-kafka is not connected (state {state})"]
    assert body["settings"] == {"ok": True, "source": "unreachable.yaml", "last_error": None}
    assert samples[("aliecs_plugin_state", (("plugin", "core-kafka"), ("state", state)))] == 1


def test_spool_depth_is_exposed_when_the_spool_is_on(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path, cleanup_topics: None,
) -> None:
    settings = Settings.from_dict({"kafkaEndpoints": [kafka_bootstrap], "kafkaProducer": {
        "topicRoot": topic_prefix, "topics": {"replicationFactor": 1},
        "spool": {"path": str(tmp_path / "spool")}}}, source="spool.yaml")
    server = ControlServer(settings, address="127.0.0.1:0", run_numbers=tmp_path / "rn",
                           metrics_address="127.0.0.1:0")
    server.start()
    try:
        assert server.monitoring is not None
        url = server.monitoring.url
        core = (("plugin", "core-kafka"), ("topic", f"{topic_prefix}.core"))
        deadline = time.monotonic() + 60
        samples = scrape(url)
        # the coreStartEvent: journaled, then acknowledged and out of the journal
        while samples.get(("aliecs_kafka_messages_acknowledged_total", core)) != 1 or (
                samples.get(("aliecs_kafka_spool_messages", (("plugin", "core-kafka"),))) != 0):
            assert time.monotonic() < deadline, samples
            time.sleep(0.2)
            samples = scrape(url)
        assert ("aliecs_kafka_spool_bytes", (("plugin", "core-kafka"),)) in samples
        assert healthz(url)[0] == 200
    finally:
        server.shutdown(drain_timeout_s=1, flush_timeout_s=5, grace_s=0.1)


def test_no_spool_no_spool_metrics(tmp_path: Path) -> None:
    server = ControlServer(Settings.from_dict({"enableKafka": False}, source="off.yaml"),
                           address="127.0.0.1:0", run_numbers=tmp_path / "rn",
                           metrics_address="127.0.0.1:0")
    server.start()
    try:
        assert server.monitoring is not None
        samples = scrape(server.monitoring.url)
    finally:
        server.shutdown(drain_timeout_s=1, flush_timeout_s=1, grace_s=0.1)
    assert not [key for key in samples if key[0].startswith("aliecs_kafka_spool")]
