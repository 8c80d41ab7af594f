"""Unit tests of aliecs_integration.settings.producer: the kafkaProducer settings key."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from aliecs_integration.errors import SettingsError
from aliecs_integration.settings.producer import (
    STATISTICS_INTERVAL_MS,
    OverflowPolicy,
    ProducerConfig,
)

SRC = "consul:o2/components/aliecs/ANY/any/settings"


def load(data: Any) -> ProducerConfig:
    return ProducerConfig.from_dict(data, source=SRC)


def test_none_and_empty_give_every_default() -> None:
    for data in (None, {}):
        config = load(data)
        assert config == ProducerConfig()
        assert config.partitions == 1
        assert config.replication_factor == 3
        assert config.topic_root == "aliecs"
        assert config.max_messages == 100_000
        assert config.max_bytes == 64 * 1024 * 1024
        assert config.overflow is OverflowPolicy.BLOCK
        assert config.block_timeout_s == 5.0
        assert config.flush_timeout_s == 10.0
        assert config.producer_properties() == {
            "acks": "all",
            "enable.idempotence": True,
            "message.timeout.ms": 0,
        }


def test_every_sub_key_is_read() -> None:
    config = load(
        {
            "properties": {
                "security.protocol": "SASL_SSL",
                "sasl.mechanism": "PLAIN",
                "sasl.username": "u",
                "sasl.password": "p",
                "linger.ms": 20,
                "batch.size": 1.5e4,
                "enable.ssl.certificate.verification": False,
            },
            "topics": {"partitions": 6, "replicationFactor": 2},
            "topicRoot": "aliecs.test1",
            "queue": {
                "maxMessages": 10,
                "maxBytes": 8192,
                "overflow": "drop_oldest",
                "blockTimeoutSeconds": 0.5,
            },
            "flushTimeoutSeconds": 3,
        }
    )
    assert (config.partitions, config.replication_factor) == (6, 2)
    assert config.topic_root == "aliecs.test1"
    assert (config.max_messages, config.max_bytes) == (10, 8192)
    assert config.overflow is OverflowPolicy.DROP_OLDEST
    assert (config.block_timeout_s, config.flush_timeout_s) == (0.5, 3.0)
    props = config.producer_properties()
    assert props["security.protocol"] == "SASL_SSL"
    assert props["linger.ms"] == 20
    assert props["batch.size"] == 1.5e4
    assert props["enable.ssl.certificate.verification"] is False
    assert props["acks"] == "all"


def test_user_properties_override_defaults_with_a_warning_when_weaker(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING):
        config = load(
            {"properties": {"acks": 1, "enable.idempotence": False, "compression.type": "zstd"}}
        )
    props = config.producer_properties()
    assert props["acks"] == 1
    assert props["enable.idempotence"] is False
    assert props["compression.type"] == "zstd"
    text = caplog.text
    assert "acks=1" in text and "enable.idempotence=false" in text
    assert SRC in text


def test_strong_settings_log_no_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        load({"properties": {"acks": "-1", "enable.idempotence": "true", "linger.ms": 1}})
    assert caplog.records == []


@pytest.mark.parametrize(
    ("data", "key", "fragment"),
    [
        ("acks=all", "kafkaProducer", "expected a mapping"),
        ({"propertes": {}}, "kafkaProducer.propertes", "unknown key"),
        ({"properties": ["acks=all"]}, "kafkaProducer.properties", "expected a mapping"),
        ({"properties": {"linger.ms": [5]}}, "kafkaProducer.properties.linger.ms", "list"),
        (
            {"properties": {"bootstrap.servers": "b:1"}},
            "kafkaProducer.properties.bootstrap.servers",
            "kafkaEndpoints",
        ),
        (
            {"properties": {"queue.buffering.max.messages": 5}},
            "kafkaProducer.properties.queue.buffering.max.messages",
            "queue.maxMessages",
        ),
        (
            {"properties": {"delivery.report.only.error": True}},
            "kafkaProducer.properties.delivery.report.only.error",
            "set by the publisher",
        ),
        (
            {"properties": {"statistics.interval.ms": 1000}},
            "kafkaProducer.properties.statistics.interval.ms",
            "set by the publisher",
        ),
        ({"topics": {"partitions": 0}}, "kafkaProducer.topics.partitions", "from 1 to 10000"),
        ({"topics": {"partitions": "3"}}, "kafkaProducer.topics.partitions", "string '3'"),
        (
            {"topics": {"replicationFactor": True}},
            "kafkaProducer.topics.replicationFactor",
            "boolean",
        ),
        ({"topics": [1]}, "kafkaProducer.topics", "expected a mapping"),
        ({"queue": {"overflow": "drop"}}, "kafkaProducer.queue.overflow", "'drop_oldest'"),
        ({"queue": {"maxMessages": 1}}, "kafkaProducer.queue.maxMessages", "from 2 to"),
        ({"queue": {"maxBytes": 100}}, "kafkaProducer.queue.maxBytes", "from 4096 to"),
        ({"queue": {"blockTimeoutSeconds": -1}}, "kafkaProducer.queue.blockTimeoutSeconds",
         "from 0 to 86400"),
        ({"queue": {"size": 1}}, "kafkaProducer.queue.size", "maxMessages"),
        ({"flushTimeoutSeconds": "10s"}, "kafkaProducer.flushTimeoutSeconds", "'10s'"),
        ({"topicRoot": "a b"}, "kafkaProducer.topicRoot", "'a b'"),
        ({"topicRoot": ""}, "kafkaProducer.topicRoot", "''"),
    ],
)
def test_bad_input_names_key_source_and_expectation(data: Any, key: str, fragment: str) -> None:
    with pytest.raises(SettingsError) as info:
        load(data)
    assert info.value.key == key
    assert info.value.source == SRC
    message = str(info.value)
    assert SRC in message and f"'{key}'" in message
    assert fragment in message, message


def test_a_bad_secret_value_is_not_echoed() -> None:
    with pytest.raises(SettingsError) as info:
        load({"properties": {"sasl.password": ["hunter2"]}})
    assert "hunter2" not in str(info.value)


SECRETS = {
    "sasl.password": "s1-hunter2",
    "ssl.key.password": "s2-kp",
    "ssl.keystore.password": "s3-ksp",
    "ssl.key.pem": "-----BEGIN PRIVATE KEY----- s4",
    "sasl.oauthbearer.client.secret": "s5-cs",
    "my.api.token": "s6-tok",
}


def test_masked_properties_and_repr_hide_every_secret() -> None:
    # built directly: "my.api.token" is no librdkafka property (from_dict would refuse it)
    config = ProducerConfig(properties={**SECRETS, "sasl.username": "aliecs", "linger.ms": 5})
    masked = config.masked_properties()
    for name in SECRETS:
        assert masked[name] == "***"
    assert masked["sasl.username"] == "aliecs"
    assert masked["linger.ms"] == 5
    assert masked["acks"] == "all"
    for text in (repr(config), str(config), repr(masked)):
        for value in SECRETS.values():
            assert value not in text
    assert "sasl.username" in repr(config)
    # the real values are still there for the client
    assert config.producer_properties()["sasl.password"] == "s1-hunter2"


@pytest.mark.parametrize(
    ("properties", "key", "fragment"),
    [
        ({"lingerms": 5}, "kafkaProducer.properties.lingerms",
         'No such configuration property: "lingerms"'),
        ({"compression.type": "lz9"}, "kafkaProducer.properties", 'Invalid value "lz9"'),
        ({"security.protocol": "SASL_SSL", "sasl.mechanism": "NOPE"},
         "kafkaProducer.properties", "Unsupported SASL mechanism: NOPE"),
    ],
)
def test_the_kafka_client_judges_properties_at_validation(
    properties: dict[str, Any], key: str, fragment: str
) -> None:
    with pytest.raises(SettingsError) as info:
        load({"properties": properties})
    assert info.value.key == key
    assert fragment in str(info.value)


def test_config_is_frozen_and_comparable() -> None:
    a = load({"properties": {"linger.ms": 5}})
    assert a == load({"properties": {"linger.ms": 5}})
    assert a != load({"properties": {"linger.ms": 6}})
    with pytest.raises(AttributeError):
        a.partitions = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        a.properties["linger.ms"] = 1  # type: ignore[index]


def test_queue_cap_is_split_between_librdkafka_and_the_publisher() -> None:
    blocking = load({"queue": {"maxMessages": 11, "maxBytes": 10_000}}).queue_split()
    assert (blocking.client_messages, blocking.own_messages) == (11, 0)  # block: all of it
    assert blocking.client_kbytes == 4 and blocking.own_bytes == 10_000 - 4096
    queue = {"maxMessages": 11, "maxBytes": 10_000, "overflow": "drop_oldest"}
    split = load({"queue": queue}).queue_split()
    assert (split.client_messages, split.own_messages) == (5, 6)
    assert split.client_kbytes == 4 and split.own_bytes == 10_000 - 4096
    assert split.max_message_bytes == 4096
    assert split.client_messages + split.own_messages == 11
    assert split.client_kbytes * 1024 + split.own_bytes == 10_000


def test_client_and_admin_configs() -> None:
    config = load(
        {
            "properties": {"security.protocol": "SSL", "linger.ms": 7},
            "queue": {"maxMessages": 1000, "maxBytes": 1 << 20},
        }
    )
    client = config.client_config(["a:1", "b:2"])
    assert client == {
        "acks": "all",
        "enable.idempotence": True,
        "message.timeout.ms": 0,
        "security.protocol": "SSL",
        "linger.ms": 7,
        "bootstrap.servers": "a:1,b:2",
        "queue.buffering.max.messages": 1000,
        "queue.buffering.max.kbytes": 512,
        "delivery.report.only.error": True,
        "statistics.interval.ms": STATISTICS_INTERVAL_MS,
    }
    assert config.admin_config(["a:1"]) == {
        "security.protocol": "SSL",
        "linger.ms": 7,
        "bootstrap.servers": "a:1",
    }
