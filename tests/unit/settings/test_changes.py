"""What changed between two settings, as logged when live settings apply: secrets masked."""

from __future__ import annotations

from typing import Any

from aliecs_integration.settings.changes import changes
from aliecs_integration.settings.core import Settings


def settings(**data: Any) -> Settings:
    runtime = data.pop("vars", None)
    return Settings.from_dict(data, source="t.yaml", runtime_vars=runtime)


def test_no_difference_is_no_change() -> None:
    a = settings(kafkaEndpoints=["a:1"], vars={"x": "1"})
    assert changes(a, settings(kafkaEndpoints=["a:1"], vars={"x": "1"})) == []


def test_each_changed_key_and_variable_with_old_and_new() -> None:
    a = settings(integrationPlugins=[], vars={"kafka_enabled": "false", "gone": "1"})
    b = settings(integrationPlugins=["kafka"], kafkaEndpoint="h:9",
                 vars={"kafka_enabled": "true", "new": "2"})
    text = [str(c) for c in changes(a, b)]
    assert "integrationPlugins: [] -> ['kafka']" in text
    assert "kafkaEndpoint: None -> 'h:9'" in text
    assert "runtimeVars.kafka_enabled: 'false' -> 'true'" in text
    assert "runtimeVars.gone: '1' -> (unset)" in text
    assert "runtimeVars.new: (unset) -> '2'" in text


def test_secrets_show_that_they_changed_never_their_value() -> None:
    a = settings(kafkaProducer={"properties": {"sasl.password": "hunter2", "linger.ms": 1,
                                               "sasl.oauthbearer.config": "clientSecret=aa"}},
                 vars={"db_token": "t0k3n"})
    b = settings(kafkaProducer={"properties": {"sasl.password": "s3cret", "linger.ms": 2,
                                               "sasl.oauthbearer.config": "clientSecret=bb"}},
                 vars={"db_token": "0ther"}, myApiKey="k")
    found = changes(a, b)
    text = "; ".join(str(c) for c in found)
    for secret in ("hunter2", "s3cret", "t0k3n", "0ther", "aa", "bb"):
        assert f"'{secret}" not in text and f"={secret}" not in text, text
    assert "kafkaProducer.properties.sasl.password: *** -> ***" in text
    assert "kafkaProducer.properties.linger.ms: 1 -> 2" in text
    assert "runtimeVars.db_token: *** -> ***" in text
    assert "myApiKey: (unset) -> ***" in text
    assert "kafkaProducer.properties.sasl.oauthbearer.config: *** -> ***" in text
