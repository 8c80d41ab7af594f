"""Unit tests of aliecs_integration.publish.topic_admin: create_topics and the TopicCreator thread,
against the in-process fake of the AdminClient (``tests/fakes.py``)."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from aliecs_integration.publish.topic_admin import TopicCreator, create_topics
from tests.fakes import FakeAdmin


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
        bootstrap_servers=["b1:9092", "b2:9092"],
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


def test_topic_creator_retries_while_unreachable_and_probes() -> None:
    rec = Recording()
    worker = creator(FakeAdmin(unreachable_for=2), rec)
    try:
        worker.request(["t"])
        assert rec.event.wait(10)
    finally:
        worker.stop(2)
    assert rec.created == [{"t"}]
    assert rec.reachable == [False, False, True]
    assert worker.admin.polls == 3 + 1  # after each request and at stop: its log lines
    probed = Recording()
    prober = creator(
        FakeAdmin(unreachable_for=0), probed, wants_probe=lambda: True, probe_interval_s=0.05
    )
    try:
        time.sleep(0.3)
    finally:
        prober.stop(2)
    assert len(probed.reachable) >= 2 and all(probed.reachable)
    assert probed.created == []


def test_an_unreachable_cluster_is_named_not_an_empty_topic_list(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rec = Recording()
    with caplog.at_level(logging.WARNING, logger="aliecs_integration.publish.topics"):
        worker = creator(FakeAdmin(unreachable_for=1000), rec, wants_probe=lambda: True)
        try:
            deadline = time.monotonic() + 5
            while not rec.reachable and time.monotonic() < deadline:
                time.sleep(0.01)
            worker.request(["t1", "t0"])
            while len(rec.reachable) < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
        finally:
            worker.stop(2)
    messages = [r.getMessage() for r in caplog.records]
    assert messages, "nothing logged"
    assert messages[0].startswith(
        "test: the Kafka cluster at b1:9092,b2:9092 is unreachable, retrying: "
    )
    assert "[]" not in caplog.text
    assert any(
        m.startswith("test: cannot create topics t0, t1 yet (cluster at b1:9092,b2:9092)")
        for m in messages[1:]
    ), messages


def test_a_request_the_client_refuses_is_a_permanent_failure() -> None:
    """librdkafka refuses more than 100,000 partitions before sending anything (ValueError):
    that used to be retried forever."""
    from confluent_kafka.admin import AdminClient

    from aliecs_integration.publish.topic_admin import create_topics

    class Meta:
        def __init__(self) -> None:
            self.topics: dict[str, object] = {}
            self.brokers = {1: object()}

    class Admin(AdminClient):  # the real client's create_topics, a fake metadata answer
        def list_topics(self, *args: object, **kwargs: object) -> Meta:  # type: ignore[override]
            return Meta()

    admin = Admin({"bootstrap.servers": "127.0.0.1:1"})
    result = create_topics(admin, ["t.x"], partitions=100_000_000, replication_factor=1,
                           timeout_s=1)
    assert set(result.failed) == {"t.x"}
    assert "num_partitions out of expected range" in result.failed["t.x"]
