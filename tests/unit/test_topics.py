"""Unit tests of aliecs_integration.topics: names, key rule, message types, creation."""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future
from types import SimpleNamespace
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from aliecs_integration import topics
from aliecs_integration.pb import events_pb2, kafka_pb2
from aliecs_integration.topics import TopicCreator, TopicNames, create_topics


def test_core_topic_names_follow_the_spec() -> None:
    assert (topics.CORE, topics.ENVIRONMENT, topics.TASK, topics.ROLE, topics.CALL, topics.RUN) == (
        "aliecs.core",
        "aliecs.environment",
        "aliecs.task",
        "aliecs.role",
        "aliecs.call",
        "aliecs.run",
    )
    assert topics.integrated_service_topic("dcs") == "aliecs.integrated_service.dcs"
    assert topics.integrated_service_topic("my-svc_2") == "aliecs.integrated_service.my-svc_2"


@pytest.mark.parametrize("service", ["", "DCS", "a.b", "odc ", "é"])
def test_bad_service_names_are_refused_by_name(service: str) -> None:
    with pytest.raises(ValueError, match="integrated service name") as info:
        topics.integrated_service_topic(service)
    assert repr(service) in str(info.value)


def test_legacy_topic_names_follow_the_spec() -> None:
    assert topics.env_state_topic("RUNNING") == "aliecs.env_state.RUNNING"
    assert topics.env_leave_state_topic("RUNNING") == "aliecs.env_leave_state.RUNNING"
    assert topics.ENV_LIST_RUNNING == "aliecs.env_list.RUNNING"
    assert topics.BEFORE_START_ACTIVITY == "aliecs.before_start_activity"
    assert topics.AFTER_START_ACTIVITY == "aliecs.after_start_activity"
    assert topics.START_ACTIVITY == "aliecs.start_activity"
    with pytest.raises(ValueError, match="'running'"):
        topics.env_state_topic("running")


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


class FakeAdmin:
    """Enough of AdminClient for create_topics: metadata and CreateTopics futures."""

    def __init__(
        self, brokers: int, existing: tuple[str, ...] = (), errors: dict[str, int] | None = None
    ) -> None:
        self.brokers = brokers
        self.topics = set(existing)
        self.errors = errors or {}
        self.requests: list[Any] = []

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> Any:
        part = SimpleNamespace(leader=1)
        names = self.topics if topic is None else {topic} & self.topics
        return SimpleNamespace(
            brokers={i: object() for i in range(1, self.brokers + 1)},
            topics={t: SimpleNamespace(error=None, partitions={0: part}) for t in names},
        )

    def create_topics(self, new_topics: list[Any], **_: Any) -> dict[str, Future[None]]:
        result: dict[str, Future[None]] = {}
        for spec in new_topics:
            self.requests.append(spec)
            future: Future[None] = Future()
            code = self.errors.get(spec.topic)
            if code is None:
                self.topics.add(spec.topic)
                future.set_result(None)
            else:
                future.set_exception(KafkaException(KafkaError(code)))
            result[spec.topic] = future
        return result


def test_create_topics_creates_only_missing_ones_and_clamps_replication(
    caplog: pytest.LogCaptureFixture,
) -> None:
    admin = FakeAdmin(brokers=1, existing=("a",))
    with caplog.at_level(logging.WARNING):
        result = create_topics(admin, ["a", "b", "c", "b"], partitions=4, replication_factor=3)
    assert result.created == ("b", "c")
    assert result.existing == ("a",)
    assert result.replication_factor == 1
    assert [(r.topic, r.num_partitions, r.replication_factor) for r in admin.requests] == [
        ("b", 4, 1),
        ("c", 4, 1),
    ]
    assert "replication factor 1 instead of 3" in caplog.text
    assert "1 broker" in caplog.text


def test_create_topics_does_not_clamp_on_a_big_enough_cluster(
    caplog: pytest.LogCaptureFixture,
) -> None:
    admin = FakeAdmin(brokers=3)
    with caplog.at_level(logging.WARNING):
        result = create_topics(admin, ["a"], partitions=1, replication_factor=3)
    assert result.replication_factor == 3 and admin.requests[0].replication_factor == 3
    assert caplog.records == []


def test_create_topics_error_handling() -> None:
    admin = FakeAdmin(
        brokers=1,
        errors={
            "exists": KafkaError.TOPIC_ALREADY_EXISTS,
            "bad": KafkaError.TOPIC_AUTHORIZATION_FAILED,
        },
    )
    result = create_topics(admin, ["exists", "bad", "ok"], partitions=1, replication_factor=1)
    assert result.created == ("ok",)
    assert result.existing == ("exists",)
    assert list(result.failed) == ["bad"]
    assert "authoriz" in result.failed["bad"].lower()
    retry = FakeAdmin(brokers=1, errors={"x": KafkaError.REQUEST_TIMED_OUT})
    with pytest.raises(KafkaException):
        create_topics(retry, ["x"], partitions=1, replication_factor=1)


class Recording:
    def __init__(self) -> None:
        self.created: list[set[str]] = []
        self.failed: list[tuple[str, str]] = []
        self.reachable: list[bool] = []
        self.event = threading.Event()

    def on_created(self, topics: set[str]) -> None:
        self.created.append(topics)
        self.event.set()

    def on_failed(self, topic: str, reason: str) -> None:
        self.failed.append((topic, reason))
        self.event.set()

    def on_reachable(self, ok: bool) -> None:
        self.reachable.append(ok)


def creator(admin: Any, rec: Recording, **kwargs: Any) -> TopicCreator:
    return TopicCreator(
        admin,
        partitions=2,
        replication_factor=3,
        name="test",
        on_created=rec.on_created,
        on_failed=rec.on_failed,
        on_reachable=rec.on_reachable,
        **kwargs,
    )


def test_topic_creator_creates_what_is_requested() -> None:
    admin = FakeAdmin(
        brokers=3, existing=("old",), errors={"bad": KafkaError.TOPIC_AUTHORIZATION_FAILED}
    )
    rec = Recording()
    worker = creator(admin, rec)
    try:
        worker.request(["new", "old", "bad"])
        assert rec.event.wait(5)
        deadline = time.monotonic() + 5
        while not (rec.created and rec.failed) and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        worker.stop(2)
    assert rec.created == [{"new", "old"}]
    assert [t for t, _ in rec.failed] == ["bad"]
    assert [(r.topic, r.num_partitions, r.replication_factor) for r in admin.requests] == [
        ("bad", 2, 3),
        ("new", 2, 3),
    ]
    assert rec.reachable == [True]


class FlakyAdmin(FakeAdmin):
    """Unreachable for the first ``failures`` metadata requests."""

    def __init__(self, failures: int) -> None:
        super().__init__(brokers=1)
        self.failures = failures

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> Any:
        if self.failures > 0:
            self.failures -= 1
            raise KafkaException(KafkaError(KafkaError._TRANSPORT))
        return super().list_topics(topic, timeout)


def test_topic_creator_retries_while_unreachable_and_probes() -> None:
    rec = Recording()
    worker = creator(FlakyAdmin(failures=2), rec)
    try:
        worker.request(["t"])
        assert rec.event.wait(10)
    finally:
        worker.stop(2)
    assert rec.created == [{"t"}]
    assert rec.reachable == [False, False, True]
    probed = Recording()
    prober = creator(
        FlakyAdmin(failures=0), probed, wants_probe=lambda: True, probe_interval_s=0.05
    )
    try:
        time.sleep(0.3)
    finally:
        prober.stop(2)
    assert len(probed.reachable) >= 2 and all(probed.reachable)
    assert probed.created == []
