"""settings show (effective values, origins, secrets masked) and settings push (validates
first); the Consul round trip is in tests/integration/test_cli_demo.py."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from click.testing import CliRunner, Result

from aliecs_integration.cli.main import cli
from aliecs_integration.cli.settings import effective_rows
from aliecs_integration.settings.sources import load_file

SETTINGS = """
    kafkaEndpoints: ["b1:9092", "b2:9092"]
    integrationPlugins: [kafka]
    kafkaEndpoint: "b1:9092"
    kafkaProducer:
      properties:
        sasl.username: aliecs
        sasl.password: hunter2
        linger.ms: 5
      topics: {partitions: 3}
    sorlogPath: /tmp/sor.jsonl
    runtimeVars: {kafka_enabled: true}
"""


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def write(tmp_path: Path, text: str = SETTINGS) -> Path:
    path = tmp_path / "settings.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_effective_rows_have_origins_and_defaults(tmp_path: Path) -> None:
    path = write(tmp_path)
    settings = load_file(path)
    rows = {key: (value, origin) for key, value, origin in effective_rows(settings)}
    assert rows["kafkaEndpoints"] == (["b1:9092", "b2:9092"], str(path))
    assert rows["enableKafka"] == (True, "default")
    assert rows["kafkaProducer.properties.sasl.password"] == ("***", str(path))
    assert rows["kafkaProducer.properties.linger.ms"] == (5, str(path))
    assert rows["kafkaProducer.properties.acks"] == ("all", "default")
    assert rows["kafkaProducer.topics.partitions"] == (3, str(path))
    assert rows["kafkaProducer.topics.replicationFactor"] == (3, "default")
    assert rows["kafkaProducer.queue.overflow"] == ("block", "default")
    assert rows["runtimeVars.kafka_enabled"] == ("true", str(path))
    assert rows["sorlogPath"] == ("/tmp/sor.jsonl", str(path))


def test_show_table_masks_secrets(tmp_path: Path) -> None:
    result = invoke("settings", "show", "--source", str(write(tmp_path)))
    assert result.exit_code == 0, result.stderr
    assert "hunter2" not in result.stdout
    line = next(x for x in result.stdout.splitlines() if "sasl.password" in x)
    assert line.split()[1] == "***"
    assert result.stdout.splitlines()[1].split() == ["KEY", "VALUE", "ORIGIN"]


def test_show_json_and_defaults() -> None:
    result = invoke("settings", "show", "--format", "json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["source"] == "built-in defaults"
    by_key = {row["key"]: row for row in data["settings"]}
    assert by_key["kafkaEndpoints"] == {"key": "kafkaEndpoints", "value": ["localhost:9092"],
                                        "origin": "default"}


def test_show_bad_input(tmp_path: Path) -> None:
    bad = write(tmp_path, "integrationPlugins: kafka\n")
    result = invoke("settings", "show", "--source", str(bad))
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"error: {bad}: key 'integrationPlugins': expected a list")
    result = invoke("settings", "show", "--source", "ftp://x")
    assert result.exit_code == 2 and "unknown settings source scheme 'ftp'" in result.stderr


def test_push_validates_before_contacting_consul(tmp_path: Path) -> None:
    bad = write(tmp_path, "enableKafka: sometimes\n")
    result = invoke("settings", "push", str(bad), "--consul", "127.0.0.1:1")
    assert result.exit_code == 2
    assert "key 'enableKafka'" in result.stderr and "Consul" not in result.stderr
    result = invoke("settings", "push", str(tmp_path / "missing.yaml"), "--consul", "x:1")
    assert result.exit_code == 2 and "settings file not found" in result.stderr
    result = invoke("settings", "push", str(write(tmp_path)), "--consul", "x:1", "--var", "oops")
    assert result.exit_code == 2
    assert result.stderr == "error: --var 'oops': expected NAME=VALUE, e.g. kafka_enabled=true\n"


def test_push_to_unreachable_consul_is_a_runtime_failure(tmp_path: Path) -> None:
    result = invoke("settings", "push", str(write(tmp_path)), "--consul", "127.0.0.1:1")
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert "cannot reach Consul at 127.0.0.1:1" in result.stderr
