"""The one name check: integrated-service names, topic names and variable names."""

from __future__ import annotations

from pathlib import Path

import pytest

from aliecs_integration import names
from aliecs_integration.publish.topics import TopicNames
from aliecs_integration.scenario.model import ScenarioError, load_scenario


@pytest.mark.parametrize("bad", ["dcsé", "Ωmega", "", " ", "a/b", "a.b", "x" * 101, "_x", "-x"])
def test_service_names_must_be_ascii_topic_words(bad: str) -> None:
    with pytest.raises(names.InvalidName, match="integrated service name"):
        names.service_name(bad)


def test_service_name_is_lower_cased() -> None:
    assert names.service_name(" DCS ") == "dcs"
    assert names.service_name("my-svc_2") == "my-svc_2"


def test_invalid_name_is_a_value_error_with_exit_code_2() -> None:
    assert issubclass(names.InvalidName, ValueError)
    assert names.InvalidName.exit_code == 2


def test_topic_names_follow_kafka_rules() -> None:
    assert names.topic_name("aliecs.run") == "aliecs.run"
    for bad in ["", ".", "..", "a b", "é", "x" * 250]:
        with pytest.raises(names.InvalidName):
            names.topic_name(bad)
    with pytest.raises(names.InvalidName):
        TopicNames("r" * 200).integrated_service("x" * 60)


@pytest.mark.parametrize("bad", ["../../evil", "a/b", "..", "", "1abc", "é", "a..b", "x" * 129])
def test_variable_names_are_safe_consul_key_parts(bad: str) -> None:
    with pytest.raises(names.InvalidName, match="variable name"):
        names.variable_name(bad)


def test_good_variable_names() -> None:
    for good in ["kafka_enabled", "dcs.enabled", "A-b_c.d"]:
        assert names.variable_name(good) == good


@pytest.mark.parametrize("service", ["dcsé", "Ωmega", "x" * 300])
def test_scenario_refuses_what_a_topic_cannot_carry(tmp_path: Path, service: str) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(
        "environments:\n  - id: a\n    actions:\n"
        f"      - {{service: '{service}', operation: op}}\n", encoding="utf-8"
    )
    with pytest.raises(ScenarioError, match=r"actions\[0\]: key 'service': integrated service"):
        load_scenario(path)
