"""Settings against a real Consul agent (fixtures from tests/servers.py, marker ``consul``).

Each test works under its own key root (``topic_prefix``) except the one test of the real
default keys, which restores whatever it found there.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aliecs_integration.errors import SettingsError
from aliecs_integration.settings.sources import (
    DEFAULT_SETTINGS_KEY,
    DEFAULT_VARS_PREFIX,
    load,
    load_consul,
    push_to_consul,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "settings.yaml"

SETTINGS_YAML = """\
# written by test_settings_consul
kafkaEndpoints: ["b1:9092", "b2:9092"]
kafkaEndpoint: "b1:9092"
integrationPlugins: [kafka]
enableKafka: false
thirdParty: {url: "http://x", retries: 3}
"""


@pytest.fixture
def keys(consul_client: Any, topic_prefix: str) -> Iterator[tuple[str, str]]:
    """``(settings_key, vars_prefix)`` unique to this test; deleted afterwards."""
    root = f"test/{topic_prefix}"
    yield f"{root}/settings", f"{root}/vars/"
    consul_client.kv.delete(f"{root}/", recurse=True)


def test_load_consul_reads_settings_and_runtime_vars(
    consul_client: Any, consul_address: str, keys: tuple[str, str]
) -> None:
    settings_key, prefix = keys
    consul_client.kv.put(settings_key, SETTINGS_YAML)
    consul_client.kv.put(f"{prefix}kafka_enabled", "true")
    consul_client.kv.put(f"{prefix}detector", "TPC \u00e9")
    consul_client.kv.put(f"{prefix}empty", "")
    consul_client.kv.put(f"{prefix}nested/name", "n")

    settings = load_consul(consul_address, settings_key=settings_key, vars_prefix=prefix)

    assert settings.source == f"consul://{consul_address}/{settings_key}"
    assert settings.kafka_endpoints == ("b1:9092", "b2:9092")
    assert settings.kafka_endpoint == "b1:9092"
    assert settings.integration_plugins == ("kafka",)
    assert settings.enable_kafka is False
    assert settings.producing is False
    assert settings.get("thirdParty") == {"url": "http://x", "retries": 3}
    assert dict(settings.runtime_vars) == {
        "kafka_enabled": "true",
        "detector": "TPC \u00e9",
        "empty": "",
        "nested/name": "n",
    }


def test_missing_settings_key(consul_address: str, keys: tuple[str, str]) -> None:
    settings_key, prefix = keys
    with pytest.raises(SettingsError) as info:
        load_consul(consul_address, settings_key=settings_key, vars_prefix=prefix)
    assert info.value.key == settings_key
    assert f"consul://{consul_address}/{settings_key}" in str(info.value)
    assert "not found" in str(info.value)


def test_malformed_yaml_in_consul(
    consul_client: Any, consul_address: str, keys: tuple[str, str]
) -> None:
    settings_key, prefix = keys
    consul_client.kv.put(settings_key, "kafkaEndpoints:\n  - b1:9092\n  enableKafka: true\n")
    with pytest.raises(SettingsError) as info:
        load_consul(consul_address, settings_key=settings_key, vars_prefix=prefix)
    assert info.value.source == f"consul://{consul_address}/{settings_key}"
    assert "malformed YAML at line 3" in str(info.value)


def test_wrong_type_in_consul(
    consul_client: Any, consul_address: str, keys: tuple[str, str]
) -> None:
    settings_key, prefix = keys
    consul_client.kv.put(settings_key, 'kafkaEndpoints: "b1:9092"\n')
    with pytest.raises(SettingsError, match="key 'kafkaEndpoints': expected a list"):
        load_consul(consul_address, settings_key=settings_key, vars_prefix=prefix)


def test_non_utf8_runtime_var(
    consul_client: Any, consul_address: str, keys: tuple[str, str]
) -> None:
    settings_key, prefix = keys
    consul_client.kv.put(settings_key, "{}")
    consul_client.kv.put(f"{prefix}bad", b"\xff\xfe")
    with pytest.raises(SettingsError) as info:
        load_consul(consul_address, settings_key=settings_key, vars_prefix=prefix)
    assert info.value.source == f"consul://{consul_address}/{prefix}bad"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_unreachable_consul_fails_quickly(tmp_path: Path) -> None:
    address = f"127.0.0.1:{_closed_port()}"
    timeout_s = 2.0
    start = time.monotonic()
    with pytest.raises(SettingsError, match=f"cannot reach Consul at {address}: "):
        load_consul(address, timeout_s=timeout_s)
    assert time.monotonic() - start < timeout_s + 1
    settings_file = tmp_path / "s.yaml"
    settings_file.write_text("{}\n")
    with pytest.raises(SettingsError, match=f"cannot reach Consul at {address}: "):
        push_to_consul(address, settings_file, timeout_s=timeout_s)


def test_push_round_trip(
    consul_client: Any, consul_address: str, keys: tuple[str, str], tmp_path: Path
) -> None:
    settings_key, prefix = keys
    text = SETTINGS_YAML + "runtimeVars: {kafka_enabled: true, from_file: f}\n"
    settings_file = tmp_path / "settings.yaml"
    settings_file.write_text(text)

    push_to_consul(
        consul_address,
        settings_file,
        runtime_vars={"from_file": "overridden", "extra": "e"},
        settings_key=settings_key,
        vars_prefix=prefix,
    )

    _, item = consul_client.kv.get(settings_key)
    assert item["Value"].decode() == text  # stored verbatim, comments included
    settings = load_consul(consul_address, settings_key=settings_key, vars_prefix=prefix)
    assert settings.kafka_endpoints == ("b1:9092", "b2:9092")
    assert dict(settings.runtime_vars) == {
        "kafka_enabled": "true",
        "from_file": "overridden",
        "extra": "e",
    }


def test_push_of_invalid_file_writes_nothing(
    consul_client: Any, consul_address: str, keys: tuple[str, str], tmp_path: Path
) -> None:
    settings_key, prefix = keys
    settings_file = tmp_path / "settings.yaml"
    settings_file.write_text("runtimeVars: {kafka_enabled: true}\nenableKafka: yes please\n")
    with pytest.raises(SettingsError, match="enableKafka"):
        push_to_consul(consul_address, settings_file, settings_key=settings_key, vars_prefix=prefix)
    _, items = consul_client.kv.get(settings_key.rpartition("/")[0], recurse=True)
    assert items is None


def test_default_keys_via_load(consul_client: Any, consul_address: str) -> None:
    """The example file pushed to the real default keys reads back through ``load``."""
    var_key = f"{DEFAULT_VARS_PREFIX}kafka_enabled"
    saved = {key: consul_client.kv.get(key)[1] for key in (DEFAULT_SETTINGS_KEY, var_key)}
    try:
        push_to_consul(consul_address, EXAMPLE)
        settings = load(f"consul://{consul_address}")
        assert settings.source == f"consul://{consul_address}/{DEFAULT_SETTINGS_KEY}"
        assert settings.kafka_endpoints == ("127.0.0.1:19092",)
        assert settings.kafka_endpoint == "127.0.0.1:19092"
        assert settings.integration_plugins == ("kafka", "trg", "dcs", "odc")
        assert settings.runtime_vars["kafka_enabled"] == "true"
        assert settings.producer.partitions == 1
    finally:
        for key, item in saved.items():
            if item is None:
                consul_client.kv.delete(key)
            else:
                consul_client.kv.put(key, item["Value"] or "")
