"""``serve`` with a settings FILE: a change of the file, and SIGHUP, apply while a run is
active (a real ``serve`` process, real Kafka); an invalid file is refused and serving goes on;
``--no-watch`` reads the settings once."""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families

from aliecs_integration.publish.topics import TopicNames
from tests.integration.test_control_service import Serve, _delete_topics
from tests.integration.test_live_settings import wait_for
from tests.kafka_helpers import existing_topics, read_topics


def write_keeping_stamp(path: Path, data: dict[str, Any], pad_to: int) -> None:
    """Rewrite ``path`` with the same size and modification time: polling cannot see it,
    only SIGHUP can."""
    before = path.stat()
    text = yaml.safe_dump(data)
    assert len(text) <= pad_to
    path.write_text(text + "#" * (pad_to - len(text) - 1) + "\n")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert path.stat().st_size == before.st_size


def test_serve_applies_file_changes_and_sighup_during_a_run(
        kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> None:
    (tmp_path / "wf").mkdir()
    settings = tmp_path / "settings.yaml"
    base = {"kafkaEndpoints": [kafka_bootstrap],
            "kafkaProducer": {"topicRoot": topic_prefix, "topics": {"replicationFactor": 1}},
            "runtimeVars": {"kafka_enabled": False}}
    settings.write_text(yaml.safe_dump(base))
    serve = Serve(str(settings), tmp_path, tmp_path / "run_number").start()
    applied: Callable[[], int] = lambda: serve.output().count(" applied: ")  # noqa: E731
    try:
        with serve.client() as client:
            env_id = client.create("default", detectors=["TPC"]).id
            client.control(env_id, "START_ACTIVITY")
            assert client.environment(env_id).environment.vars["kafka_enabled"] == "false"

            # 1. the file changes: polled, applied, the running environment sees it
            with_legacy = {**base, "integrationPlugins": ["kafka"],
                           "kafkaEndpoint": kafka_bootstrap,
                           "runtimeVars": {"kafka_enabled": True}}
            settings.write_text(yaml.safe_dump(with_legacy) + "#" * 200 + "\n")
            wait_for(lambda: applied() == 1, "the file change applied")
            assert client.environment(env_id).environment.vars["kafka_enabled"] == "true"
            assert "integrationPlugins: [] -> ['kafka']" in serve.output()
            reply = client.control(env_id, "STOP_ACTIVITY")
            assert reply.state == "CONFIGURED"
            # the legacy plugin, started by the change, published the end of the run
            leave = TopicNames(topic_prefix).env_leave_state("RUNNING")
            wait_for(lambda: leave in existing_topics(kafka_bootstrap, topic_prefix),
                     "the legacy topic created")
            assert len(read_topics(kafka_bootstrap, [leave], 1, timeout=120)[leave]) == 1

            # 2. a change polling cannot see (same size and time): SIGHUP reads it
            size = settings.stat().st_size
            write_keeping_stamp(settings, {**with_legacy, "runtimeVars": {"kafka_enabled": False},
                                           "note": "sighup"}, size)
            assert serve.proc is not None
            serve.proc.send_signal(signal.SIGHUP)
            wait_for(lambda: applied() == 2, "the SIGHUP reload applied")
            assert client.environment(env_id).environment.vars["kafka_enabled"] == "false"
            assert serve.proc.poll() is None  # SIGHUP did not stop it

            # 3. an invalid file: refused, logged with key and source; serving goes on
            settings.write_text(yaml.safe_dump({**with_legacy, "enableKafka": "maybe"}))
            wait_for(lambda: "new settings refused" in serve.output(), "the refusal")
            assert f"{settings}: key 'enableKafka': expected a boolean" in serve.output()
            assert client.control(env_id, "START_ACTIVITY").state == "RUNNING"

            # the watch's counts, as the metrics endpoint serves them
            url = re.search(r"metrics on (\S+)/metrics", serve.output())
            assert url is not None, serve.output()
            text = requests.get(f"{url.group(1)}/metrics", timeout=30).text
            samples = {(s.name, s.labels.get("result", "")): s.value
                       for family in text_string_to_metric_families(text)
                       for s in family.samples if s.name.startswith("aliecs_settings_")}
            assert samples[("aliecs_settings_reloads_total", "applied")] == 2
            assert samples[("aliecs_settings_reloads_total", "refused")] == 1
            assert samples[("aliecs_settings_source_reachable", "")] == 1
        assert serve.terminate() == 0, serve.output()
        assert applied() == 2
        assert "0 undelivered" in serve.output() and "stopped cleanly" in serve.output()
    finally:
        if serve.proc is not None and serve.proc.poll() is None:
            serve.proc.kill()
            serve.proc.wait(10)
        _delete_topics(kafka_bootstrap, topic_prefix)


def test_serve_no_watch_reads_settings_once(kafka_bootstrap: str, topic_prefix: str,
                                            tmp_path: Path) -> None:
    (tmp_path / "wf").mkdir()
    settings = tmp_path / "settings.yaml"
    base = {"kafkaEndpoints": [kafka_bootstrap], "enableKafka": False,
            "runtimeVars": {"kafka_enabled": False}}
    settings.write_text(yaml.safe_dump(base))
    serve = Serve(str(settings), tmp_path, tmp_path / "run_number")
    serve.args.append("--no-watch")
    serve.start()
    try:
        settings.write_text(yaml.safe_dump({**base, "runtimeVars": {"kafka_enabled": True}}))
        assert serve.proc is not None
        serve.proc.send_signal(signal.SIGHUP)
        with serve.client() as client:
            env_id = client.create("default", detectors=["TPC"]).id
            assert client.environment(env_id).environment.vars["kafka_enabled"] == "false"
        assert serve.terminate() == 0, serve.output()
        assert " applied: " not in serve.output() and "(watched)" not in serve.output()
    finally:
        if serve.proc is not None and serve.proc.poll() is None:
            serve.proc.kill()
            serve.proc.wait(10)
