"""Typos in settings keys: refused when one letter or the case away from a known key, warned
about when close, left alone when far (third-party plugins read their own keys)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from click.testing import CliRunner

from aliecs_integration.cli.main import cli
from aliecs_integration.errors import SettingsError
from aliecs_integration.settings.core import Settings


@pytest.mark.parametrize(
    ("data", "key", "meant"),
    [
        ({"enablekafka": False}, "enablekafka", "enableKafka"),
        ({"integrationPlugin": ["kafka"]}, "integrationPlugin", "integrationPlugins"),
        ({"kafkaEndpointss": ["a:1"]}, "kafkaEndpointss", "kafkaEndpoints"),
        ({"KAFKAPRODUCER": {}}, "KAFKAPRODUCER", "kafkaProducer"),
        ({"runtimeVar": {}}, "runtimeVar", "runtimeVars"),
    ],
)
def test_near_misses_are_refused(data: dict[str, object], key: str, meant: str) -> None:
    with pytest.raises(SettingsError, match=f"did you mean `{meant}`") as info:
        Settings.from_dict(data, source="s.yaml")
    assert info.value.key == key


def test_a_key_a_plugin_declares_is_allowed() -> None:
    settings = Settings.from_dict({"enableKafkaX": 1}, source="s", declared_keys={"enableKafkaX"})
    assert settings.get("enableKafkaX") == 1


def test_close_unknown_keys_are_kept_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        settings = Settings.from_dict({"kafkaEndpts": ["a:1"], "mySorlogPath": "/x"},
                                      source="s.yaml")
    assert settings.get("mySorlogPath") == "/x"
    assert "key 'kafkaEndpts': unknown key, kept for plugins; did you mean `kafkaEndpoints`?" in (
        caplog.text)
    assert "mySorlogPath" not in caplog.text


def test_legacy_endpoint_without_the_legacy_plugin_is_warned_about(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING):
        Settings.from_dict({"kafkaEndpoint": "b:1"}, source="s.yaml")
    assert "did you mean `kafkaEndpoints`?" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        Settings.from_dict({"kafkaEndpoint": "b:1", "integrationPlugins": ["kafka"]},
                           source="s.yaml")
    assert caplog.text == ""


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("enablekafka: false\n", "key 'enablekafka': unknown key; did you mean `enableKafka`?"),
        ("kafkaProducer: {properties: {lingerms: 5}}\n",
         "key 'kafkaProducer.properties.lingerms': the Kafka client refused the properties: "
         'No such configuration property: "lingerms"'),
    ],
)
def test_settings_show_refuses_typos(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(text)
    result = CliRunner().invoke(cli, ["settings", "show", "--source", str(path)])
    assert result.exit_code == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], lines
