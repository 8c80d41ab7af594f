"""Event headers (issue 15) against the real broker: a scenario run with core-kafka, the legacy
kafka plugin and a simulated service, read back by `consume`: every message on every topic
family carries its content type, a unique event id and the instance id (the core start event's
frameworkId); `consume` decodes by the header, and says so when the header names an unknown
type."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from aliecs_integration.cli.main import cli
from aliecs_integration.pb import events_pb2, kafka_pb2
from tests.kafka_helpers import create_topic, read_topics

EVENT = "application/x-protobuf; messageType=events.Event"
NOTIFICATION = "application/x-protobuf; messageType=kafka.NewStateNotification"
LIST = "application/x-protobuf; messageType=kafka.ActiveRunsList"


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_every_message_carries_its_headers_and_consume_reads_them(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    settings = tmp_path / "settings.yaml"
    settings.write_text(textwrap.dedent(f"""\
        kafkaEndpoints: ["{kafka_bootstrap}"]
        kafkaEndpoint: "{kafka_bootstrap}"
        integrationPlugins: [kafka, dcs]
        kafkaProducer:
          topicRoot: {topic_prefix}
          topics: {{partitions: 1, replicationFactor: 1}}
        runtimeVars: {{kafka_enabled: "true"}}
    """))
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(textwrap.dedent("""\
        environments:
          - id: headers
            detectors: [TPC]
            actions:
              - DEPLOY
              - CONFIGURE
              - START_ACTIVITY
              - service: dcs
                operation: dcs.StartOfRun()
                steps: [{step: SOR, status: DONE_OK}]
                status: DONE_OK
              - STOP_ACTIVITY
              - destroy
    """))
    ran = invoke("run", "--settings", str(settings), "--scenario", str(scenario),
                 "--run-numbers", str(tmp_path / "rn"))
    assert ran.exit_code == 0, ran.stdout + ran.stderr
    written = re.findall(rf"^({re.escape(topic_prefix)}\.\S+)\s+\d", ran.stdout, re.MULTILINE)
    families = {f"{topic_prefix}.{name}" for name in (
        "core", "environment", "run", "call", "role", "task", "integrated_service.dcs",
        "env_state.RUNNING", "env_leave_state.RUNNING", "env_list.RUNNING")}
    assert families <= set(written), written

    consumed = invoke("consume", *written, "--root", topic_prefix, "--brokers",
                      kafka_bootstrap, "--from-beginning", "--format", "json")
    assert consumed.exit_code == 0, consumed.stderr
    lines = json_lines(consumed.stdout)
    assert [line for line in lines if "error" in line] == []
    print(f"\nheaders: {len(lines)} messages on {len(written)} topics")
    assert {line["topic"] for line in lines} == set(written)

    start = [line for line in lines if "coreStartEvent" in line.get("message", {})]
    assert len(start) == 1
    instance = start[0]["message"]["coreStartEvent"]["frameworkId"]
    event_ids = [line["headers"]["event-id"] for line in lines]
    assert len(set(event_ids)) == len(lines)  # unique per message
    for line in lines:
        headers = line["headers"]
        assert set(headers) == {"content-type", "event-id", "source-instance-id"}, line
        assert headers["source-instance-id"] == instance, line
        topic = line["topic"].removeprefix(f"{topic_prefix}.")
        if topic.startswith("env_list."):
            expected = (LIST, "kafka.ActiveRunsList")
        elif topic.startswith(("env_state.", "env_leave_state.", "before_", "after_",
                               "start_activity")):
            expected = (NOTIFICATION, "kafka.NewStateNotification")
        else:
            expected = (EVENT, "events.Event")
        assert (headers["content-type"], line["type"]) == expected, line

    # the values are unchanged: what Kafka holds decodes as before, headers or not
    raw = read_topics(kafka_bootstrap, sorted(families), expected=0, settle=0.5)
    for topic, messages in raw.items():
        cls = (kafka_pb2.ActiveRunsList if ".env_list." in topic else
               kafka_pb2.NewStateNotification if ".env_" in topic else events_pb2.Event)
        for msg in messages:
            assert cls.FromString(msg.value()).SerializeToString(deterministic=True) == (
                msg.value())


def test_consume_decodes_by_the_header_and_names_an_unknown_type(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    topic = f"{topic_prefix}.run"  # by its name a core topic: events.Event
    create_topic(AdminClient({"bootstrap.servers": kafka_bootstrap}), NewTopic(topic, 1, 1))
    notification = kafka_pb2.NewStateNotification(
        envInfo=kafka_pb2.EnvInfo(environmentId="e", state="RUNNING", runNumber=7),
        timestamp=5)
    event = events_pb2.Event(runEvent=events_pb2.Ev_RunEvent(environmentId="e", runNumber=7))
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    producer.produce(topic, notification.SerializeToString(), b"e",
                     headers=[("content-type", NOTIFICATION.encode())])
    producer.produce(topic, event.SerializeToString(), b"e",
                     headers=[("content-type", b"application/x-protobuf; messageType=x.Nope")])
    producer.produce(topic, event.SerializeToString(), b"e")  # no header: the topic's type
    assert producer.flush(30) == 0

    result = invoke("consume", topic, "--root", topic_prefix, "--brokers", kafka_bootstrap,
                    "--from-beginning", "--format", "json")
    assert result.exit_code == 0, result.stderr
    by_header, unknown, by_topic = json_lines(result.stdout)
    assert by_header["type"] == "kafka.NewStateNotification"
    assert by_header["message"]["envInfo"]["runNumber"] == 7
    assert unknown["type"] == "x.Nope"
    assert unknown["error"].startswith(
        "its content-type header names message type 'x.Nope', which this reader does not know")
    assert by_topic["type"] == "events.Event" and "headers" not in by_topic
    assert by_topic["message"] == {"runEvent": {"environmentId": "e", "runNumber": 7}}
    assert "1 undecodable" in result.stderr
    text = invoke("consume", topic, "--root", topic_prefix, "--brokers", kafka_bootstrap,
                  "--from-beginning", "--format", "text")
    assert "UNDECODABLE" in text.stdout.splitlines()[1]
    assert "which this reader does not know" in text.stdout.splitlines()[1]
