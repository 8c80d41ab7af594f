"""Hardening against the real broker (issue 12): exit codes that tell the truth, listing
commands that publish nothing, topics deleted while running."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner, Result
from confluent_kafka import Consumer, TopicPartition

from aliecs_integration.cli.main import cli
from tests.servers import SaslKafka


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def error_lines(result: Result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


def settings_file(tmp_path: Path, bootstrap: str, root: str, extra: str = "") -> Path:
    path = tmp_path / "settings.yaml"
    path.write_text(f"kafkaEndpoints: [{bootstrap}]\n"
                    f"kafkaProducer: {{topicRoot: {root}, topics: {{replicationFactor: 1}}}}\n"
                    + extra)
    return path


def test_run_exits_1_when_the_broker_refuses_an_event_and_says_why(
    tmp_path: Path, kafka_bootstrap: str, topic_prefix: str
) -> None:
    big = "x" * 1_200_000  # over librdkafka's message.max.bytes (1,000,000)
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(
        "environments:\n  - id: big\n    actions:\n      - DEPLOY\n"
        f"      - {{service: dcs, operation: dcs.Big(), payload: '{big}'}}\n      - destroy\n")
    result = invoke("run", "--settings", str(settings_file(tmp_path, kafka_bootstrap,
                                                            topic_prefix)),
                    "--scenario", str(scenario), "--run-numbers", str(tmp_path / "rn"),
                    "--flush-timeout", "20")
    assert result.exit_code == 1, result.stdout + result.stderr
    [line] = error_lines(result)
    assert "dropped" in line and "MSG_SIZE_TOO_LARGE" in line, line
    assert "reachable" not in line, line


def test_plugins_listing_publishes_nothing(
    tmp_path: Path, kafka_bootstrap: str, topic_prefix: str
) -> None:
    settings = settings_file(tmp_path, kafka_bootstrap, topic_prefix,
                             f"kafkaEndpoint: '{kafka_bootstrap}'\nintegrationPlugins: [kafka]\n")
    result = invoke("plugins", "--settings", str(settings), "--wait", "5")
    assert result.exit_code == 0, result.stderr
    rows = {line.split()[0]: line for line in result.stdout.splitlines()[2:]}
    assert " yes " in rows["core-kafka"] and " yes " in rows["kafka"], result.stdout
    consumer = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": topic_prefix,
                         "auto.offset.reset": "earliest"})
    try:
        topics = consumer.list_topics(timeout=10).topics
        counts = {}
        for topic in (f"{topic_prefix}.core", f"{topic_prefix}.env_list.RUNNING"):
            if topic not in topics:
                counts[topic] = 0
                continue
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
            counts[topic] = high - low
    finally:
        consumer.close()
    assert counts == {f"{topic_prefix}.core": 0, f"{topic_prefix}.env_list.RUNNING": 0}


def test_run_names_an_authentication_failure_not_just_reachability(
    tmp_path: Path, kafka_bootstrap: str, topic_prefix: str
) -> None:
    # SASL against the plain listener of the real broker: the handshake fails
    settings = settings_file(
        tmp_path, kafka_bootstrap, topic_prefix,
        "kafkaProducer:\n  topicRoot: " + topic_prefix + "\n  properties: {security.protocol: "
        "SASL_PLAINTEXT, sasl.mechanism: PLAIN, sasl.username: u, sasl.password: "
        "hunter2secret}\n")
    text = settings.read_text().replace(
        f"kafkaProducer: {{topicRoot: {topic_prefix}, topics: {{replicationFactor: 1}}}}\n", "")
    settings.write_text(text)
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text("environments: [{id: a, actions: [DEPLOY]}]\n")
    result = invoke("run", "--settings", str(settings), "--scenario", str(scenario),
                    "--run-numbers", str(tmp_path / "rn"), "--flush-timeout", "3")
    assert result.exit_code == 1, result.stdout + result.stderr
    [line] = error_lines(result)
    assert "not acknowledged" in line and "SASL" in line and "handshake failed" in line, line
    assert "hunter2secret" not in result.stdout + result.stderr


def test_run_names_a_wrong_sasl_password(
    tmp_path: Path, kafka_sasl: SaslKafka, topic_prefix: str
) -> None:
    """Against the real SASL/PLAIN broker: a wrong password ends in exit 1 and a last line
    that names the authentication failure, the password never printed."""
    props = {**kafka_sasl.properties(), "sasl.password": "wrong-Pa55word"}
    settings = tmp_path / "settings.yaml"
    settings.write_text(
        f"kafkaEndpoints: ['{kafka_sasl.bootstrap}']\nkafkaProducer:\n  topicRoot: "
        f"{topic_prefix}\n  properties:\n"
        + "".join(f"    {k}: '{v}'\n" for k, v in props.items()))
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text("environments: [{id: a, actions: [DEPLOY]}]\n")
    result = invoke("run", "--settings", str(settings), "--scenario", str(scenario),
                    "--run-numbers", str(tmp_path / "rn"), "--flush-timeout", "3")
    assert result.exit_code == 1, result.stdout + result.stderr
    [line] = error_lines(result)
    assert "not acknowledged" in line and "Authentication failed" in line, line
    assert "wrong-Pa55word" not in result.stdout + result.stderr
