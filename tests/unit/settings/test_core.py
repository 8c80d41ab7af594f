"""Unit tests of aliecs_integration.settings.core: validation, defaults, origins, masking."""

from __future__ import annotations

from typing import Any

import pytest

from aliecs_integration.errors import SettingsError
from aliecs_integration.settings.core import Settings
from aliecs_integration.settings.producer import ProducerConfig
from aliecs_integration.settings.secrets import MASK, is_secret_key, masked

SRC = "/etc/aliecs/settings.yaml"

SPEC_EXAMPLE: dict[str, Any] = {
    "kafkaEndpoints": [
        "my-kafka-broker-1:9092",
        "my-kafka-broker-2:9092",
        "my-kafka-broker-3:9092",
    ],
    "kafkaEndpoint": "my-kafka-broker:9092",
    "integrationPlugins": ["kafka"],
    "enableKafka": True,
}


def load(data: Any, **kwargs: Any) -> Settings:
    return Settings.from_dict(data, source=SRC, **kwargs)


def raises(data: Any, *fragments: str, key: str | None = None) -> SettingsError:
    with pytest.raises(SettingsError) as info:
        load(data)
    message = str(info.value)
    assert SRC in message
    assert info.value.source == SRC
    for fragment in fragments:
        assert fragment in message, message
    if key is not None:
        assert info.value.key == key
        assert f"'{key}'" in message
    return info.value


def test_defaults_from_empty_document() -> None:
    settings = load({})
    assert settings.kafka_endpoints == ("localhost:9092",)
    assert settings.kafka_endpoint is None
    assert settings.integration_plugins == ()
    assert settings.enable_kafka is True
    assert settings.producing is True
    assert dict(settings.runtime_vars) == {}
    assert dict(settings.raw) == {}
    assert settings.source == SRC
    assert settings.producer == ProducerConfig.from_dict(None, source=SRC)


def test_spec_example_is_read() -> None:
    settings = load(SPEC_EXAMPLE)
    assert settings.kafka_endpoints == tuple(SPEC_EXAMPLE["kafkaEndpoints"])
    assert settings.kafka_endpoint == "my-kafka-broker:9092"
    assert settings.integration_plugins == ("kafka",)
    assert settings.enable_kafka is True
    assert settings.producing is True


def test_producer_is_built_from_the_kafka_producer_mapping() -> None:
    sub = {"properties": {"compression.type": "lz4", "linger.ms": 5}}
    settings = load({"kafkaProducer": sub})
    assert settings.producer == ProducerConfig.from_dict(sub, source=SRC)


def test_bad_kafka_producer_is_a_settings_error() -> None:
    with pytest.raises(SettingsError):
        load({"kafkaProducer": "acks=all"})


@pytest.mark.parametrize(
    ("data", "enable", "producing"),
    [
        ({"enableKafka": False}, False, False),
        ({"kafkaEndpoints": []}, True, False),
        ({"enableKafka": True, "kafkaEndpoints": ["b:1"]}, True, True),
    ],
)
def test_producing(data: dict[str, Any], enable: bool, producing: bool) -> None:
    settings = load(data)
    assert settings.enable_kafka is enable
    assert settings.producing is producing


@pytest.mark.parametrize("data", [["kafkaEndpoints"], "kafkaEndpoints: x", 3])
def test_top_level_must_be_a_mapping(data: Any) -> None:
    raises(data, "expected a mapping")


def test_top_level_keys_must_be_strings() -> None:
    raises({1: "x"}, "expected string keys", "1")


def test_single_endpoint_string_is_a_type_error() -> None:
    raises(
        {"kafkaEndpoints": "b1:9092"}, "expected a list", "one-element list", key="kafkaEndpoints"
    )


@pytest.mark.parametrize("value", [None, 9092, {"b": 1}, True])
def test_endpoints_wrong_type(value: Any) -> None:
    raises({"kafkaEndpoints": value}, "expected a list", key="kafkaEndpoints")


@pytest.mark.parametrize(
    ("item", "fragment"),
    [
        (9092, "int"),
        ("", "''"),
        ("   ", "'   '"),
        ("broker", "'broker'"),
        (":9092", "':9092'"),
        ("broker:", "'broker:'"),
        ("broker:0", "1..65535"),
        ("broker:70000", "1..65535"),
        ("broker:abc", "'broker:abc'"),
    ],
)
def test_endpoint_items_must_be_host_port(item: Any, fragment: str) -> None:
    raises({"kafkaEndpoints": ["ok:1", item]}, "host:port", fragment, key="kafkaEndpoints[1]")


def test_ipv6_endpoint_is_accepted() -> None:
    assert load({"kafkaEndpoints": ["[::1]:9092"]}).kafka_endpoints == ("[::1]:9092",)


@pytest.mark.parametrize("value", [9092, ["b:1"], "broker"])
def test_legacy_endpoint_wrong(value: Any) -> None:
    raises({"kafkaEndpoint": value}, "host:port", key="kafkaEndpoint")


def test_legacy_endpoint_null_means_absent() -> None:
    assert load({"kafkaEndpoint": None}).kafka_endpoint is None


def test_plugins_string_is_a_type_error() -> None:
    raises(
        {"integrationPlugins": "kafka"}, "expected a list of plugin names", key="integrationPlugins"
    )


@pytest.mark.parametrize("item", [3, "", None, ["kafka"]])
def test_plugin_names_must_be_non_empty_strings(item: Any) -> None:
    raises({"integrationPlugins": ["kafka", item]}, "plugin name", key="integrationPlugins[1]")


@pytest.mark.parametrize("value", ["yes", "true", 1, 0, None, ["true"]])
def test_enable_kafka_accepts_real_booleans_only(value: Any) -> None:
    raises({"enableKafka": value}, "expected a boolean", key="enableKafka")


def test_unknown_keys_are_kept_and_readable() -> None:
    extra = {"endpoint": "x:1", "nested": {"a": [1, 2]}}
    settings = load({**SPEC_EXAMPLE, "myPlugin": extra})
    assert settings.get("myPlugin") == extra
    assert settings.raw["myPlugin"] == extra
    assert settings.get("kafkaEndpoint") == "my-kafka-broker:9092"
    assert settings.get("absent") is None
    assert settings.get("absent", 7) == 7
    assert set(settings.raw) == {*SPEC_EXAMPLE, "myPlugin"}


def test_raw_is_read_only_and_a_copy() -> None:
    data: dict[str, Any] = {"myPlugin": {"a": 1}}
    settings = load(data)
    data["myPlugin"]["a"] = 2
    data["later"] = 1
    assert settings.get("myPlugin") == {"a": 1}
    assert "later" not in settings.raw
    with pytest.raises(TypeError):
        settings.raw["x"] = 1  # type: ignore[index]
    with pytest.raises(TypeError):
        settings.runtime_vars["x"] = "1"  # type: ignore[index]


def test_runtime_vars_from_document_are_strings() -> None:
    settings = load({"runtimeVars": {"kafka_enabled": True, "off": False, "n": 3, "s": "x"}})
    assert dict(settings.runtime_vars) == {
        "kafka_enabled": "true",
        "off": "false",
        "n": "3",
        "s": "x",
    }
    assert "runtimeVars" in settings.raw


def test_runtime_vars_argument_overrides_document() -> None:
    settings = load(
        {"runtimeVars": {"kafka_enabled": "false", "a": "1"}},
        runtime_vars={"kafka_enabled": "true", "b": "2"},
    )
    assert dict(settings.runtime_vars) == {"kafka_enabled": "true", "a": "1", "b": "2"}


def test_runtime_vars_wrong_types() -> None:
    raises({"runtimeVars": ["kafka_enabled"]}, "expected a mapping", key="runtimeVars")
    raises({"runtimeVars": {"x": [1]}}, "expected a string", key="runtimeVars.x")
    raises({"runtimeVars": {"x": None}}, "got null", key="runtimeVars.x")
    raises({"runtimeVars": {3: "x"}}, "variable name", key="runtimeVars")


@pytest.mark.parametrize("bad", [{"": "x"}, {"x": 1}, {1: "x"}])
def test_runtime_vars_argument_must_be_strings(bad: dict[Any, Any]) -> None:
    with pytest.raises(SettingsError, match="runtime variable"):
        load({}, runtime_vars=bad)


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("sasl.password", True),
        ("ssl.key.password", True),
        ("ssl.key.pem", True),
        ("consulToken", True),
        ("client_SECRET", True),
        ("sasl.username", False),
        ("bootstrap.servers", False),
        ("linger.ms", False),
    ],
)
def test_is_secret_key(name: str, secret: bool) -> None:
    assert is_secret_key(name) is secret


def test_masked_recurses_into_mappings_and_lists() -> None:
    value: dict[str, Any] = {"a": {"sasl.password": "p", "x": [{"token": "t", "y": 1}]}, "b": 2}
    assert masked(value) == {"a": {"sasl.password": MASK, "x": [{"token": MASK, "y": 1}]}, "b": 2}
    assert value["a"]["sasl.password"] == "p"


def test_describe_origins_and_masking() -> None:
    producer = {"properties": {"sasl.password": "hunter2", "linger.ms": 5}}
    settings = load(
        {"kafkaEndpoint": "b:1", "kafkaProducer": producer, "apiToken": "t0k", "other": 1}
    )
    described = settings.describe()
    assert described["kafkaEndpoints"] == (["localhost:9092"], "default")
    assert described["integrationPlugins"] == ([], "default")
    assert described["enableKafka"] == (True, "default")
    assert described["kafkaEndpoint"] == ("b:1", SRC)
    assert described["other"] == (1, SRC)
    assert described["apiToken"] == (MASK, SRC)
    assert described["kafkaProducer"] == (
        {"properties": {"sasl.password": MASK, "linger.ms": 5}},
        SRC,
    )
    assert described["runtimeVars"] == ({}, "default")
    assert "hunter2" not in repr(described)
    plain = settings.describe(mask_secrets=False)
    assert plain["apiToken"] == ("t0k", SRC)
    assert plain["kafkaProducer"][0]["properties"]["sasl.password"] == "hunter2"


def test_repr_masks_secrets() -> None:
    settings = load(
        {
            "kafkaProducer": {"properties": {"sasl.password": "hunter2"}},
            "myPlugin": {"apiToken": "t0k"},
            "runtimeVars": {"db_password": "pw"},
        }
    )
    text = repr(settings)
    for secret in ("hunter2", "t0k", "'pw'"):
        assert secret not in text
    assert "myPlugin" in text
    assert settings.get("myPlugin") == {"apiToken": "t0k"}


def test_describe_runtime_vars_from_argument_name_the_source() -> None:
    settings = load({}, runtime_vars={"kafka_enabled": "true"})
    assert settings.describe()["runtimeVars"] == ({"kafka_enabled": "true"}, SRC)


def test_settings_error_names_source_and_key() -> None:
    error = raises({"enableKafka": "yes"}, "'yes'")
    assert str(error).startswith(f"{SRC}: key 'enableKafka': ")
