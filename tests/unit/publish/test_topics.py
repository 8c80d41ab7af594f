"""Unit tests of aliecs_integration.publish.topics: names, key rule, message types."""

from __future__ import annotations

import pytest

from aliecs_integration.pb import events_pb2, kafka_pb2
from aliecs_integration.publish import topics
from aliecs_integration.publish.topics import TopicNames


def test_core_topic_names_follow_the_spec() -> None:
    d = topics.DEFAULT
    assert (d.core, d.environment, d.task, d.role, d.call, d.run) == (
        "aliecs.core",
        "aliecs.environment",
        "aliecs.task",
        "aliecs.role",
        "aliecs.call",
        "aliecs.run",
    )
    assert topics.DEFAULT.integrated_service("dcs") == "aliecs.integrated_service.dcs"
    assert topics.DEFAULT.integrated_service("my-svc_2") == "aliecs.integrated_service.my-svc_2"


@pytest.mark.parametrize("service", ["", "DCS", "a.b", "odc ", "é"])
def test_bad_service_names_are_refused_by_name(service: str) -> None:
    with pytest.raises(ValueError, match="integrated service name") as info:
        topics.DEFAULT.integrated_service(service)
    assert repr(service) in str(info.value)


def test_legacy_topic_names_follow_the_spec() -> None:
    assert topics.DEFAULT.env_state("RUNNING") == "aliecs.env_state.RUNNING"
    assert topics.DEFAULT.env_leave_state("RUNNING") == "aliecs.env_leave_state.RUNNING"
    assert topics.DEFAULT.env_list_running == "aliecs.env_list.RUNNING"
    assert topics.DEFAULT.before_start_activity == "aliecs.before_start_activity"
    assert topics.DEFAULT.after_start_activity == "aliecs.after_start_activity"
    assert topics.DEFAULT.start_activity == "aliecs.start_activity"
    with pytest.raises(ValueError, match="'running'"):
        topics.DEFAULT.env_state("running")


def test_standard_topics_cover_core_services_and_legacy() -> None:
    names = topics.standard_topics()
    assert len(names) == len(set(names))
    for expected in (
        "aliecs.core",
        "aliecs.environment",
        "aliecs.task",
        "aliecs.role",
        "aliecs.call",
        "aliecs.run",
        "aliecs.integrated_service.dcs",
        "aliecs.integrated_service.ddsched",
        "aliecs.integrated_service.odc",
        "aliecs.integrated_service.trg",
        "aliecs.env_state.STANDBY",
        "aliecs.env_state.DEPLOYED",
        "aliecs.env_state.CONFIGURED",
        "aliecs.env_state.RUNNING",
        "aliecs.env_state.ERROR",
        "aliecs.env_state.UNKNOWN",
        "aliecs.env_leave_state.STANDBY",
        "aliecs.env_leave_state.ERROR",
        "aliecs.env_list.RUNNING",
        "aliecs.before_start_activity",
        "aliecs.after_start_activity",
        "aliecs.start_activity",
    ):
        assert expected in names
    assert "aliecs.env_leave_state.UNKNOWN" not in names


def test_a_root_prefixes_every_name() -> None:
    names = TopicNames("aliecs.t1234")
    assert names.environment == "aliecs.t1234.environment"
    assert names.integrated_service("odc") == "aliecs.t1234.integrated_service.odc"
    assert names.env_state("DONE") == "aliecs.t1234.env_state.DONE"
    assert all(t.startswith("aliecs.t1234.") for t in topics.standard_topics("aliecs.t1234"))
    with pytest.raises(ValueError, match="topic root"):
        TopicNames("bad root")


@pytest.mark.parametrize(
    ("topic", "message_type"),
    [
        ("aliecs.core", events_pb2.Event),
        ("aliecs.environment", events_pb2.Event),
        ("aliecs.task", events_pb2.Event),
        ("aliecs.role", events_pb2.Event),
        ("aliecs.call", events_pb2.Event),
        ("aliecs.run", events_pb2.Event),
        ("aliecs.integrated_service.newsvc", events_pb2.Event),
        ("aliecs.env_state.RUNNING", kafka_pb2.NewStateNotification),
        ("aliecs.env_leave_state.CONFIGURED", kafka_pb2.NewStateNotification),
        ("aliecs.before_start_activity", kafka_pb2.NewStateNotification),
        ("aliecs.after_start_activity", kafka_pb2.NewStateNotification),
        ("aliecs.start_activity", kafka_pb2.NewStateNotification),
        ("aliecs.env_list.RUNNING", kafka_pb2.ActiveRunsList),
    ],
)
def test_message_type_for_topic(topic: str, message_type: type) -> None:
    assert topics.message_type_for_topic(topic) is message_type
    rooted = "x.y." + topic.removeprefix("aliecs.")
    assert topics.message_type_for_topic(rooted, root="x.y") is message_type


@pytest.mark.parametrize(
    "topic",
    [
        "aliecs.unknown",
        "other.core",
        "aliecs.integrated_service",
        "aliecs.env_state",
        "aliecs",
        "aliecs.core.extra",
    ],
)
def test_unknown_topics_are_a_value_error_naming_them(topic: str) -> None:
    with pytest.raises(ValueError) as info:
        topics.message_type_for_topic(topic)
    assert repr(topic) in str(info.value)


def test_key_rule_empty_id_means_no_key() -> None:
    assert topics.key_for("env-1") == b"env-1"
    assert topics.key_for("é") == "é".encode()
    assert topics.key_for("") is None
