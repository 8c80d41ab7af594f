"""``consume`` against the SASL/PLAIN broker: credentials from --settings (the producer's
properties, consumer-side keys only) or -X, refused without them; --env, --run, --since,
--until filters; --raw frames that decode back."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from aliecs_integration.cli.main import cli
from aliecs_integration.pb import events_pb2, kafka_pb2
from tests.servers import SaslKafka

BASE_MS = 1_790_000_000_000  # 2026-09-21T14:13:20Z: explicit Kafka timestamps of the messages


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


@pytest.fixture
def sasl_topics(kafka_sasl: SaslKafka, topic_prefix: str) -> tuple[str, str]:
    """``<prefix>.run`` (5 run events of environments A and B, one a minute) and
    ``<prefix>.env_state.RUNNING`` (one legacy notification of B), on the SASL broker."""
    run_topic, legacy_topic = f"{topic_prefix}.run", f"{topic_prefix}.env_state.RUNNING"
    config = {"bootstrap.servers": kafka_sasl.bootstrap, **kafka_sasl.properties()}
    admin = AdminClient(config)
    for future in admin.create_topics([NewTopic(t, 1, 1) for t in (run_topic, legacy_topic)],
                                      operation_timeout=30).values():
        future.result(timeout=30)
    producer = Producer(config)
    runs = [("AAAAAAAAAAAA", 1), ("BBBBBBBBBBBB", 2), ("AAAAAAAAAAAA", 1),
            ("BBBBBBBBBBBB", 2), ("AAAAAAAAAAAA", 3)]
    for minute, (env, run) in enumerate(runs):
        event = events_pb2.Event(timestamp=BASE_MS + minute * 60_000, runEvent=(
            events_pb2.Ev_RunEvent(environmentId=env, runNumber=run)))
        producer.produce(run_topic, event.SerializeToString(), env.encode(),
                         timestamp=BASE_MS + minute * 60_000)
    note = kafka_pb2.NewStateNotification(
        envInfo=kafka_pb2.EnvInfo(environmentId="BBBBBBBBBBBB", runNumber=2, state="RUNNING"))
    producer.produce(legacy_topic, note.SerializeToString(), timestamp=BASE_MS)
    assert producer.flush(30) == 0
    return run_topic, legacy_topic


def json_lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_consume_needs_the_credentials_and_reads_with_settings_or_x(
    kafka_sasl: SaslKafka, sasl_topics: tuple[str, str], topic_prefix: str, tmp_path: Path
) -> None:
    run_topic, legacy_topic = sasl_topics
    refused = invoke("consume", run_topic, "--root", topic_prefix, "--brokers",
                     kafka_sasl.bootstrap, "--from-beginning", "--connect-timeout", "3")
    assert refused.exit_code == 1
    assert refused.stderr.startswith(f"error: cannot reach Kafka at {kafka_sasl.bootstrap}")

    settings = tmp_path / "settings.yaml"  # the producer's settings, producer-only keys too
    settings.write_text(textwrap.dedent(f"""\
        kafkaEndpoints: ["{kafka_sasl.bootstrap}"]
        kafkaProducer:
          topicRoot: {topic_prefix}
          properties:
            security.protocol: SASL_PLAINTEXT
            sasl.mechanism: PLAIN
            sasl.username: {kafka_sasl.username}
            sasl.password: {kafka_sasl.password}
            acks: all
            linger.ms: 5
            compression.type: lz4
    """))
    by_env = invoke("consume", run_topic, legacy_topic, "--settings", str(settings),
                    "--from-beginning", "--env", "BBBBBBBBBBBB")
    assert by_env.exit_code == 0, by_env.stderr
    lines = json_lines(by_env.stdout)
    assert sorted((str(line["topic"]), str(line["offset"])) for line in lines) == sorted(
        [(run_topic, "1"), (run_topic, "3"), (legacy_topic, "0")])
    assert all("BBBBBBBBBBBB" in json.dumps(line["message"]) for line in lines)
    assert by_env.stderr.strip() == ("consumed 3 messages, 3 left out by the filters: "
                                     "reached the end of every partition")

    auth = [f"-X{key}={value}" for key, value in kafka_sasl.properties().items()]
    by_run = invoke("consume", run_topic, "--root", topic_prefix, "--brokers",
                    kafka_sasl.bootstrap, *auth, "--from-beginning", "--run", "1")
    assert by_run.exit_code == 0, by_run.stderr
    assert [line["offset"] for line in json_lines(by_run.stdout)] == [0, 2]


def test_consume_time_window_and_raw_frames(
    kafka_sasl: SaslKafka, sasl_topics: tuple[str, str], topic_prefix: str
) -> None:
    run_topic, _ = sasl_topics
    auth = [f"-X{key}={value}" for key, value in kafka_sasl.properties().items()]
    common = ["consume", run_topic, "--root", topic_prefix, "--brokers", kafka_sasl.bootstrap,
              *auth]
    window = invoke(*common, "--since", "2026-09-21T14:14:20", "--until",
                    str(BASE_MS + 3 * 60_000))  # minutes 1..3, ISO (UTC) and epoch ms
    assert window.exit_code == 0, window.stderr
    assert [line["offset"] for line in json_lines(window.stdout)] == [1, 2, 3]
    assert window.stderr.strip().endswith("reached the end of every partition")

    raw = CliRunner().invoke(cli, [*common, "--from-beginning", "--raw", "--env",
                                   "AAAAAAAAAAAA"])
    assert raw.exit_code == 0, raw.stderr
    data, runs = raw.stdout_bytes, []
    while data:
        size = int.from_bytes(data[:4], "big")
        event = events_pb2.Event.FromString(data[4:4 + size])
        runs.append((event.runEvent.environmentId, event.runEvent.runNumber))
        data = data[4 + size:]
    assert runs == [("AAAAAAAAAAAA", 1), ("AAAAAAAAAAAA", 1), ("AAAAAAAAAAAA", 3)]
