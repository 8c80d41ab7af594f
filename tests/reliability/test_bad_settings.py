"""Consul down at start, malformed settings and wrong types: ``aliecs-integration run`` ends with
one clear error line naming the source and key, and nothing is half-started: no plugin host, no
plugin instance, no producer, no thread left running."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aliecs_integration_plugins import core_kafka
from click.testing import CliRunner

from aliecs_integration.cli.main import cli
from aliecs_integration.host import PluginHost
from aliecs_integration.publish import publisher as publisher_module

pytestmark = pytest.mark.reliability

SCENARIO = Path(__file__).resolve().parents[2] / "examples" / "scenario.yaml"

BAD_FILES = {
    "malformed YAML": ("kafkaEndpoints: [127.0.0.1:19092\n", "malformed YAML at line"),
    "endpoints not a list": ("kafkaEndpoints: 5\n", "key 'kafkaEndpoints': expected a list"),
    "queue cap a string": (
        "kafkaEndpoints: [127.0.0.1:19092]\nkafkaProducer:\n  queue:\n    maxMessages: many\n",
        "key 'kafkaProducer.queue.maxMessages': expected an integer from 2 to 100000000, "
        "got string 'many'"),
    "enableKafka a string": ('enableKafka: "yes"\n', "key 'enableKafka': expected a boolean"),
    "reserved librdkafka property": (
        "kafkaProducer:\n  properties:\n    bootstrap.servers: x:1\n",
        "kafkaProducer.properties.bootstrap.servers"),
    "unknown producer key": ("kafkaProducer:\n  queeue: {}\n", "kafkaProducer.queeue"),
    "top level a list": ("- a\n- b\n", "expected a mapping"),
}


@pytest.fixture
def started() -> Iterator[dict[str, int]]:
    """Counts plugin hosts, core-kafka plugins and publishers constructed during the test."""
    counts = {"hosts": 0, "plugins": 0, "publishers": 0}
    patches: list[tuple[Any, str, Any]] = [
        (PluginHost, "hosts", PluginHost.__init__),
        (core_kafka.CoreKafkaPlugin, "plugins", core_kafka.CoreKafkaPlugin.__init__),
        (publisher_module.Publisher, "publishers", publisher_module.Publisher.__init__),
    ]
    for cls, name, original in patches:
        def spy(self: Any, *args: Any, _name: str = name, _original: Any = original,
                **kwargs: Any) -> None:
            counts[_name] += 1
            _original(self, *args, **kwargs)
        cls.__init__ = spy
    try:
        yield counts
    finally:
        for cls, _, original in patches:
            cls.__init__ = original


def run_cli(settings_source: str) -> tuple[int, str, set[threading.Thread]]:
    """``run --settings SOURCE`` in-process: exit code, stderr, threads it left running."""
    before = set(threading.enumerate())
    result = CliRunner().invoke(cli, ["run", "--settings", settings_source,
                                      "--scenario", str(SCENARIO)])
    return result.exit_code, result.output, set(threading.enumerate()) - before


def assert_nothing_started(counts: dict[str, int], left: set[threading.Thread]) -> None:
    assert counts == {"hosts": 0, "plugins": 0, "publishers": 0}
    assert not left, f"threads left running: {sorted(t.name for t in left)}"


def test_consul_down_at_start(started: dict[str, int]) -> None:
    code, output, left = run_cli("consul://127.0.0.1:1")
    assert code == 1
    assert output.strip() == ("error: consul://127.0.0.1:1/o2/components/aliecs/ANY/any/settings"
                              ": cannot reach Consul at 127.0.0.1:1: Connection refused")
    assert_nothing_started(started, left)


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_settings_file(case: str, tmp_path: Path, started: dict[str, int]) -> None:
    text, expected = BAD_FILES[case]
    path = tmp_path / "settings.yaml"
    path.write_text(text)
    code, output, left = run_cli(str(path))
    assert code == 2, output
    lines = output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}"), output
    assert expected in lines[0] and "Traceback" not in output
    assert_nothing_started(started, left)


def test_malformed_settings_in_consul(consul_client: Any, consul_address: str,
                                      started: dict[str, int]) -> None:
    key = f"aliecs-test/{uuid.uuid4().hex}/settings"
    consul_client.kv.put(key, "kafkaEndpoints: [127.0.0.1:19092]\nenableKafka: 1\n")
    try:
        code, output, left = run_cli(f"consul://{consul_address}/{key}")
    finally:
        consul_client.kv.delete(key)
    assert code == 2, output
    assert output.strip() == (f"error: consul://{consul_address}/{key}: key 'enableKafka': "
                              "expected a boolean (true or false, unquoted), got int")
    assert_nothing_started(started, left)
