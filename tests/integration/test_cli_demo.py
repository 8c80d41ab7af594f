"""The CLI against the real broker and Consul: the demo end to end, consume decoding everything
the demo wrote (and reporting random bytes without stopping), topics create, settings via
Consul, plugins with a live broker."""

from __future__ import annotations

import json
import os
import re
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from aliecs_integration.cli.main import cli
from aliecs_integration.devservers import DEV_CONSUL_ADDRESS, DEV_KAFKA_BOOTSTRAP
from aliecs_integration.pb import events_pb2
from tests.kafka_helpers import create_topic


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def json_lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_demo_end_to_end_and_consume_decodes_every_topic_it_wrote(
    kafka_bootstrap: str, consul_address: str, tmp_path: Path
) -> None:
    if (kafka_bootstrap, consul_address) != (DEV_KAFKA_BOOTSTRAP, DEV_CONSUL_ADDRESS):
        pytest.skip("the demo uses the dev servers' fixed addresses")
    result = invoke("demo", "--run-numbers", str(tmp_path / "rn"))
    assert result.exit_code == 0, result.stdout + result.stderr
    out = result.stdout
    assert "kafka: already running, reused" in out  # the fixture's broker: left running
    for topic in ("aliecs.environment", "aliecs.run", "aliecs.call", "aliecs.role",
                  "aliecs.core", "aliecs.integrated_service.dcs", "aliecs.env_state.RUNNING",
                  "aliecs.env_leave_state.RUNNING", "aliecs.env_list.RUNNING"):
        row = next(line for line in out.splitlines() if line.startswith(topic + " "))
        published, acked, failed, dropped, pending, read_back = row.split()[1:7]
        assert published == acked == read_back and int(acked) > 0, row
        assert failed == dropped == pending == "0", row
    assert "-- a legacy ActiveRunsList: the runs active at that moment" in out
    served = out.split("== 6. the control API")[1]
    assert re.search(r"environment \w{12}: START_ACTIVITY -> RUNNING, run \d+", served)
    assert re.search(r"^\w{12}\s+default\s+RUNNING\s+\d+\s+CPV,EMC", served, re.MULTILINE)
    assert "environment" in served and "destroyed" in served
    assert "  serve: stopped cleanly" in served
    # serve's /metrics during the run, and its health
    assert "\naliecs_active_runs 1.0\n" in served
    assert '\naliecs_environments{state="RUNNING"} 1.0\n' in served
    assert re.search(r"/healthz   -> HTTP 200\n", served)
    assert "0 not as expected" in out
    assert "! " not in out  # no unexpected outcome marker

    written = re.findall(r"^(aliecs\.\S+)\s+\d", out, re.MULTILINE)
    assert len(written) >= 15
    consumed = invoke("consume", *written, "--brokers", kafka_bootstrap, "--from-beginning")
    assert consumed.exit_code == 0, consumed.stderr
    lines = json_lines(consumed.stdout)
    assert {line["topic"] for line in lines} == set(written)
    assert [line for line in lines if "error" in line] == []
    assert "undecodable" not in consumed.stderr


def test_consume_reports_random_bytes_and_goes_on(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    topic = f"{topic_prefix}.run"
    create_topic(AdminClient({"bootstrap.servers": kafka_bootstrap}), NewTopic(topic, 1, 1))
    good = events_pb2.Event(runEvent=events_pb2.Ev_RunEvent(environmentId="e", runNumber=5))
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for value in (good.SerializeToString(), b"\xff\xfe" + os.urandom(100),
                  good.SerializeToString()):
        producer.produce(topic, value, b"e")
    assert producer.flush(30) == 0
    for fmt in ("json", "text"):
        result = invoke("consume", topic, "--root", topic_prefix, "--brokers", kafka_bootstrap,
                        "--from-beginning", "--format", fmt)
        assert result.exit_code == 0, result.stderr
        assert result.stderr.strip() == (
            "consumed 3 messages, 1 undecodable: reached the end of every partition")
        lines = result.stdout.splitlines()
        assert len(lines) == 3
        if fmt == "json":
            first, bad, last = json_lines(result.stdout)
            assert first["message"] == last["message"] == {
                "runEvent": {"environmentId": "e", "runNumber": 5}}
            assert (bad["topic"], bad["partition"], bad["offset"]) == (topic, 0, 1)
            assert str(bad["hexPrefix"]).startswith("fffe")
        else:
            assert f"{topic}[0]@1 key=e UNDECODABLE (102 bytes)" in lines[1]


def test_consume_unknown_topic_on_the_broker(kafka_bootstrap: str, topic_prefix: str) -> None:
    result = invoke("consume", f"{topic_prefix}.run", "--root", topic_prefix, "--brokers",
                    kafka_bootstrap, "--from-beginning")
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: topic '{topic_prefix}.run' does not exist on ")
    assert result.stderr.count("\n") == 1


def test_topics_create(kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> None:
    settings = tmp_path / "s.yaml"
    settings.write_text(textwrap.dedent(f"""\
        kafkaEndpoints: ["{kafka_bootstrap}"]
        kafkaProducer:
          topicRoot: {topic_prefix}
          topics: {{partitions: 2, replicationFactor: 3}}
    """))
    first = invoke("topics", "create", "--settings", str(settings))
    assert first.exit_code == 0, first.stderr
    rows = [line.split() for line in first.stdout.splitlines()[2:]]
    assert len(rows) == 26  # 10 core (4 services) + 16 legacy
    assert {tuple(r[1:]) for r in rows} == {("2", "1", "created")}  # replication clamped
    assert f"{topic_prefix}.env_list.RUNNING" in {r[0] for r in rows}
    again = invoke("topics", "create", "--settings", str(settings))
    assert again.exit_code == 0, again.stderr
    assert {line.split()[-1] for line in again.stdout.splitlines()[2:]} == {"existed"}


def test_settings_push_then_show_from_consul(
    consul_address: str, topic_prefix: str, tmp_path: Path
) -> None:
    settings = tmp_path / "s.yaml"
    settings.write_text('kafkaEndpoints: ["k:9092"]\n'
                        "kafkaProducer: {properties: {sasl.password: hunter2}}\n")
    key = f"{topic_prefix}/settings"
    pushed = invoke("settings", "push", str(settings), "--consul", consul_address, "--key", key)
    assert pushed.exit_code == 0, pushed.stderr
    assert f"wrote consul://{consul_address}/{key}" in pushed.stdout
    shown = invoke("settings", "show", "--source", f"consul://{consul_address}/{key}")
    assert shown.exit_code == 0, shown.stderr
    rows = {line.split()[0]: line.split()[1:] for line in shown.stdout.splitlines()[2:]}
    assert rows["kafkaEndpoints"] == ['["k:9092"]', f"consul://{consul_address}/{key}"]
    assert rows["kafkaProducer.properties.sasl.password"][0] == "***"
    assert "hunter2" not in shown.stdout
    missing = invoke("settings", "show", "--source", f"consul://{consul_address}/{key}-nope")
    assert missing.exit_code == 2 and "settings key not found" in missing.stderr


def test_plugins_with_a_live_broker(kafka_bootstrap: str, tmp_path: Path) -> None:
    settings = tmp_path / "s.yaml"
    settings.write_text(f'kafkaEndpoints: ["{kafka_bootstrap}"]\n'
                        f'kafkaEndpoint: "{kafka_bootstrap}"\nintegrationPlugins: [kafka]\n')
    result = invoke("plugins", "--settings", str(settings), "--wait", "10")
    assert result.exit_code == 0, result.stderr
    rows = {line.split()[0]: line for line in result.stdout.splitlines()[2:]}
    assert "READY" in rows["core-kafka"] and kafka_bootstrap in rows["core-kafka"]
    assert "READY" in rows["kafka"]
