"""Unit tests of aliecs_integration.publish.publisher with in-process fakes of the Kafka clients
(``FakeProducer`` and ``FakeAdmin`` from ``tests/fakes.py``)."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from confluent_kafka import KafkaError

from aliecs_integration.errors import PublishError, SettingsError
from aliecs_integration.publish import publisher as publisher_mod
from aliecs_integration.publish.publisher import Publisher, shared_publisher
from aliecs_integration.records import ConnectionState
from aliecs_integration.settings.producer import ProducerConfig
from tests.fakes import FakeAdmin, FakeProducer


class Clients:
    """Factories handing the publisher one FakeProducer and one FakeAdmin."""

    def __init__(self) -> None:
        self.producer: FakeProducer | None = None
        self.admin: FakeAdmin | None = None
        self.admin_setup: Callable[[FakeAdmin], None] = lambda a: None

    def make_producer(self, config: dict[str, Any]) -> FakeProducer:
        self.producer = FakeProducer(config)
        return self.producer

    def make_admin(self, config: dict[str, Any]) -> FakeAdmin:
        self.admin = FakeAdmin(config)
        self.admin_setup(self.admin)
        return self.admin


@pytest.fixture
def make() -> Iterator[Callable[..., tuple[Publisher, FakeProducer, FakeAdmin]]]:
    made: list[Publisher] = []

    def factory(
        config: dict[str, Any] | None = None,
        admin_setup: Callable[[FakeAdmin], None] = lambda a: None,
    ) -> tuple[Publisher, FakeProducer, FakeAdmin]:
        clients = Clients()
        clients.admin_setup = admin_setup
        pub = Publisher(
            ["b1:9092", "b2:9092"],
            ProducerConfig.from_dict(config, source="test"),
            producer_factory=clients.make_producer,
            admin_factory=clients.make_admin,
        )
        made.append(pub)
        assert clients.producer is not None and clients.admin is not None
        return pub, clients.producer, clients.admin

    yield factory
    for pub in made:
        if not pub.closed:
            if pub._producer is not None:
                pub._producer.set_up(True)
            pub.close(2.0)


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)


def created(pub: Publisher, *topics: str) -> None:
    """Have ``topics`` created (existing in the fake cluster) before the test goes on."""
    pub.prepare(topics)
    wait_until(lambda: all(t in pub._created for t in topics))


def values(producer: FakeProducer, topic: str | None = None) -> list[bytes]:
    return [v for t, _, v in producer.delivered if topic is None or t == topic]


def test_producer_config_defaults_passthrough_and_queue_window(make: Any) -> None:
    pub, producer, admin = make(
        {
            "properties": {"compression.type": "lz4", "linger.ms": 20, "sasl.username": "u"},
            "queue": {"maxMessages": 1000, "maxBytes": 1 << 20},
        }
    )
    conf = producer.config
    assert conf["bootstrap.servers"] == "b1:9092,b2:9092"
    assert conf["acks"] == "all"
    assert conf["enable.idempotence"] is True
    assert conf["message.timeout.ms"] == 0
    assert conf["compression.type"] == "lz4" and conf["linger.ms"] == 20
    assert conf["queue.buffering.max.messages"] == 1000  # all of it under block (default)
    assert conf["queue.buffering.max.kbytes"] == 512
    assert conf["delivery.report.only.error"] is True  # idempotent: counts from statistics
    assert conf["statistics.interval.ms"] > 0
    assert admin.config["bootstrap.servers"] == "b1:9092,b2:9092"
    assert admin.config["sasl.username"] == "u"
    assert pub.max_message_bytes == 512 * 1024


def test_first_message_to_a_new_topic_waits_for_its_creation(make: Any) -> None:
    pub, producer, admin = make({"topics": {"partitions": 3, "replicationFactor": 3}})
    admin.gate.clear()
    for i in range(5):
        pub.publish("aliecs.integrated_service.new", str(i).encode(), b"env")
    time.sleep(0.1)
    assert producer.delivered == []
    assert pub.metrics.snapshot().queued == 5
    admin.gate.set()
    wait_until(lambda: len(producer.delivered) == 5)
    assert values(producer) == [b"0", b"1", b"2", b"3", b"4"]
    assert [(r.topic, r.num_partitions, r.replication_factor) for r in admin.requests] == [
        ("aliecs.integrated_service.new", 3, 1)
    ]
    assert pub.metrics.snapshot().topics["aliecs.integrated_service.new"].sent == 5


def test_existing_topics_are_not_created_again(make: Any) -> None:
    pub, producer, admin = make(admin_setup=lambda a: a.topics.add("t"))
    pub.publish("t", b"x")
    wait_until(lambda: len(producer.delivered) == 1)
    assert admin.requests == []


def test_per_key_order_is_kept_across_creation_and_backlog(make: Any) -> None:
    pub, producer, admin = make({"queue": {"maxMessages": 200}})
    admin.gate.clear()
    sent: dict[bytes, list[bytes]] = {b"A": [], b"B": []}
    producer.set_up(False)  # librdkafka's queue fills up: later messages use the backlog
    for i in range(150):
        key = b"A" if i % 3 else b"B"
        value = str(i).encode()
        sent[key].append(value)
        pub.publish("t" if i < 40 else ("t" if i % 2 else "u"), value, key)
        if i == 20:
            admin.gate.set()
    producer.set_up(True)
    wait_until(lambda: len(producer.delivered) == 150)
    for topic in ("t", "u"):
        for key, expected in sent.items():
            got = [v for t, k, v in producer.delivered if t == topic and k == key]
            assert got == [v for v in expected if v in got]
    assert sorted(values(producer), key=int) == [str(i).encode() for i in range(150)]


def test_drop_newest_counts_and_logs_drops(make: Any, caplog: pytest.LogCaptureFixture) -> None:
    pub, producer, _ = make(
        {"queue": {"maxMessages": 10, "overflow": "drop_newest"}},
        admin_setup=lambda a: a.topics.add("t"),
    )
    created(pub, "t")
    producer.set_up(False)
    with caplog.at_level(logging.WARNING):
        for i in range(15):
            pub.publish("t", str(i).encode())
    snap = pub.metrics.snapshot()
    assert snap.dropped == 5 and snap.topics["t"].dropped == 5
    assert snap.queued == 10
    assert "dropped" in caplog.text and "drop_newest" in caplog.text
    producer.set_up(True)
    wait_until(lambda: len(producer.delivered) == 10)
    assert values(producer) == [str(i).encode() for i in range(10)]


def test_drop_oldest_discards_the_oldest_queued(make: Any) -> None:
    pub, producer, _ = make(
        {"queue": {"maxMessages": 10, "overflow": "drop_oldest"}},
        admin_setup=lambda a: a.topics.add("t"),
    )
    created(pub, "t")
    producer.set_up(False)
    for i in range(15):
        pub.publish("t", str(i).encode())
    assert pub.metrics.snapshot().dropped == 5
    producer.set_up(True)
    wait_until(lambda: len(producer.delivered) == 10)
    # 0-4 were already inside librdkafka's queue; 5-9 were the oldest held by the publisher
    assert values(producer) == [str(i).encode() for i in (0, 1, 2, 3, 4, 10, 11, 12, 13, 14)]


def test_block_waits_then_raises_and_counts(make: Any) -> None:
    pub, producer, _ = make(
        {"queue": {"maxMessages": 4, "overflow": "block", "blockTimeoutSeconds": 0.2}},
        admin_setup=lambda a: a.topics.add("t"),
    )
    created(pub, "t")
    producer.set_up(False)
    for i in range(4):
        pub.publish("t", str(i).encode())
    started = time.monotonic()
    with pytest.raises(PublishError, match="queue full"):
        pub.publish("t", b"late")
    assert time.monotonic() - started >= 0.19
    assert pub.metrics.snapshot().dropped == 1
    # room freed while blocked: the caller goes on
    threading.Timer(0.1, producer.set_up, (True,)).start()
    pub.publish("t", b"4")
    wait_until(lambda: len(producer.delivered) == 5)
    assert values(producer) == [b"0", b"1", b"2", b"3", b"4"]


def test_byte_cap_and_oversized_messages(make: Any) -> None:
    pub, producer, _ = make(
        {"queue": {"maxMessages": 1000, "maxBytes": 8192, "overflow": "drop_newest"}},
        admin_setup=lambda a: a.topics.add("t"),
    )
    assert pub.max_message_bytes == 4096
    created(pub, "t")
    with pytest.raises(PublishError, match=r"more than half of queue\.maxBytes"):
        pub.publish("t", b"x" * 4097)
    producer.set_up(False)
    for _ in range(5):
        pub.publish("t", b"y" * 2000)  # 2 fit librdkafka's 4 KiB; drop_newest drops the rest
    snap = pub.metrics.snapshot()
    assert snap.dropped == 4  # the oversized one and the last three 2000-byte ones
    assert snap.queued == 2


def test_client_refusal_is_a_publish_error(make: Any) -> None:
    pub, producer, _ = make(admin_setup=lambda a: a.topics.add("t"))
    created(pub, "t")
    producer.refuse_bytes = 10
    with pytest.raises(PublishError, match="refused"):
        pub.publish("t", b"z" * 11)
    assert pub.metrics.snapshot().topics["t"].dropped == 1


def test_failed_deliveries_are_counted(make: Any, caplog: pytest.LogCaptureFixture) -> None:
    pub, producer, _ = make(admin_setup=lambda a: a.topics.update({"bad", "good"}))
    producer.fail_topics.add("bad")
    with caplog.at_level(logging.ERROR):
        pub.publish("bad", b"1")
        pub.publish("good", b"2")
        report = pub.flush(5)
    assert (report.delivered, report.failed, report.undelivered) == (1, 1, 0)
    assert "delivery to bad failed" in caplog.text


def test_permanent_creation_failure_drops_waiting_messages(
    make: Any, caplog: pytest.LogCaptureFixture
) -> None:
    pub, _producer, _admin = make(
        admin_setup=lambda a: a.errors.update({"forbidden": KafkaError.TOPIC_AUTHORIZATION_FAILED})
    )
    with caplog.at_level(logging.ERROR):
        pub.publish("forbidden", b"1")
        pub.publish("forbidden", b"2")
        wait_until(lambda: pub.metrics.snapshot().dropped == 2)
    assert "cannot create topic forbidden" in caplog.text
    assert pub.metrics.snapshot().queued == 0


def test_creation_is_retried_while_the_cluster_is_unreachable(make: Any) -> None:
    pub, producer, admin = make()
    admin.up = False
    pub.publish("t", b"1")
    wait_until(lambda: pub.connection_state() is ConnectionState.TRANSIENT_FAILURE)
    assert producer.delivered == []
    admin.up = True
    wait_until(lambda: values(producer) == [b"1"], timeout=10)
    assert pub.connection_state() is ConnectionState.READY


def test_flush_and_close_report_and_refuse_afterwards(
    make: Any, caplog: pytest.LogCaptureFixture
) -> None:
    pub, producer, admin = make(admin_setup=lambda a: a.topics.add("t"))
    for i in range(3):
        pub.publish("t", str(i).encode())
    assert pub.flush(5).delivered == 3
    producer.set_up(False)
    admin.gate.clear()
    pub.publish("t", b"stuck-in-client")
    pub.publish("new-topic", b"stuck-waiting-for-topic")
    with caplog.at_level(logging.WARNING):
        report = pub.close(0.3)
    admin.gate.set()
    assert (report.delivered, report.failed, report.dropped, report.undelivered) == (3, 0, 0, 2)
    assert "2 undelivered" in caplog.text
    assert producer.closed and producer.purged == 1
    assert pub.connection_state() is ConnectionState.SHUTDOWN
    with pytest.raises(PublishError, match="closed"):
        pub.publish("t", b"after")
    assert pub.metrics._offered == []  # folded at once: nothing piles up after close
    assert pub.metrics.snapshot().topics["t"].published == 5


def test_an_unreachable_cluster_is_logged_with_its_servers(
    make: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        pub, _producer, _admin = make(admin_setup=lambda a: setattr(a, "up", False))
        wait_until(lambda: "unreachable" in caplog.text)
    assert "core-kafka: the Kafka cluster at b1:9092,b2:9092 is unreachable" in caplog.text
    assert "[]" not in caplog.text
    assert pub.connection_state() is ConnectionState.TRANSIENT_FAILURE


def test_librdkafka_log_lines_are_rate_limited_with_a_count(
    make: Any, caplog: pytest.LogCaptureFixture
) -> None:
    pub, producer, _ = make()
    client = f"rdkafka#producer-{id(pub)}"  # the filter is process-wide: a kind of our own
    bridged = producer.config["logger"]
    assert bridged.name == "aliecs_integration.publish.publisher.librdkafka"
    connect_failed = "[thrd:b1:9092/bootstrap]: Connect to ipv4#10.0.0.1:9092 failed"

    def ours() -> list[str]:
        return [r.getMessage() for r in caplog.records if client in r.getMessage()]

    with caplog.at_level(logging.DEBUG, logger=bridged.name):
        for _ in range(1200):  # confluent-kafka's call: logger.log(level, fmt, fac, name, buf)
            bridged.log(logging.ERROR, "%s [%s] %s", "FAIL", client, connect_failed)
        assert ours() == [f"FAIL [{client}] {connect_failed}"]
        pub.close(1)
    assert ours()[1:] == [f"FAIL [{client}]: 1199 similar line(s) suppressed since the last one"]


def test_messages_waiting_for_their_topic_may_use_the_whole_cap(make: Any) -> None:
    pub, producer, admin = make({"queue": {"maxMessages": 10, "overflow": "drop_oldest"}})
    admin.gate.clear()  # the topic cannot be created yet (broker down since start)
    producer.set_up(False)
    for i in range(10):
        pub.publish("new", str(i).encode())
    assert pub.metrics.snapshot().dropped == 0  # not half of the cap: all of it
    admin.gate.set()
    wait_until(lambda: len(producer.queue) == 5)  # librdkafka's half took the oldest over
    assert pub.metrics.snapshot().dropped == 0  # the hand-over itself drops nothing
    assert pub.metrics.snapshot().queued == 10
    pub.publish("new", b"10")  # the whole cap is in use: the oldest one held by us goes
    assert pub.metrics.snapshot().dropped == 1
    producer.set_up(True)
    wait_until(lambda: len(producer.delivered) == 10)
    assert values(producer) == [str(i).encode() for i in (0, 1, 2, 3, 4, 6, 7, 8, 9, 10)]


def test_published_counts_every_message_offered_per_topic(make: Any) -> None:
    pub, producer, admin = make(admin_setup=lambda a: a.topics.add("t"))
    created(pub, "t")
    for i in range(3):
        pub.publish("t", str(i).encode())
    producer.refuse_bytes = 10
    with pytest.raises(PublishError):
        pub.publish("t", b"z" * 11)
    admin.gate.clear()
    pub.publish("later", b"waits for its topic")
    pub.flush(0.5)
    snap = pub.metrics.snapshot()
    t, later = snap.topics["t"], snap.topics["later"]
    assert (t.published, t.sent, t.dropped) == (4, 3, 1)
    assert (later.published, later.sent, later.failed, later.dropped) == (1, 0, 0, 0)
    assert snap.published == 5 and snap.queued == 1
    admin.gate.set()


def test_a_publish_blocked_for_room_is_refused_when_the_publisher_closes(make: Any) -> None:
    pub, producer, _ = make(
        {"queue": {"maxMessages": 4, "overflow": "block", "blockTimeoutSeconds": 10}},
        admin_setup=lambda a: a.topics.add("t"),
    )
    created(pub, "t")
    producer.set_up(False)
    for i in range(4):
        pub.publish("t", str(i).encode())
    errors: list[BaseException] = []

    def blocked() -> None:
        try:
            pub.publish("t", b"blocked")
        except PublishError as exc:
            errors.append(exc)

    thread = threading.Thread(target=blocked)
    thread.start()
    time.sleep(0.2)
    report = pub.close(0.1)
    thread.join(5)
    assert not thread.is_alive()
    assert [str(e) for e in errors] == [
        "core-kafka: message to 't' refused: the publisher is closed"
    ]
    assert report.undelivered == 4
    assert pub.metrics.snapshot().dropped == 1  # counted: nothing lost silently


def test_connection_state_follows_errors_and_deliveries(make: Any) -> None:
    pub, producer, _admin = make(admin_setup=lambda a: a.topics.add("t"))
    wait_until(lambda: pub.connection_state() is ConnectionState.READY)  # metadata answered
    producer.error_cb(KafkaError(KafkaError._ALL_BROKERS_DOWN))
    assert pub.connection_state() is ConnectionState.TRANSIENT_FAILURE
    pub.publish("t", b"1")
    wait_until(lambda: pub.connection_state() is ConnectionState.READY)


def test_secrets_never_reach_the_log(make: Any, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        pub, producer, _ = make(
            {"properties": {"sasl.password": "hunter2-secret", "ssl.key.password": "kp-secret"}}
        )
        pub.publish("t", b"1")
        producer.error_cb(KafkaError(KafkaError._TRANSPORT))
        pub.close(1)
    assert caplog.text  # something was logged
    assert "hunter2-secret" not in caplog.text and "kp-secret" not in caplog.text
    assert "sasl.password" in caplog.text  # named, masked
    assert producer.config["sasl.password"] == "hunter2-secret"


def test_shared_publisher_is_shared_and_closed_by_its_last_user(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clients = Clients()
    monkeypatch.setattr(publisher_mod, "Publisher", _factory_publisher(clients))
    config = ProducerConfig()
    a = shared_publisher(["b:1"], config)
    b = shared_publisher(["b:1"], ProducerConfig())
    c = shared_publisher(
        ["b:1"], ProducerConfig.from_dict({"properties": {"linger.ms": 1}}, source="t")
    )
    d = shared_publisher(["other:1"], config)
    assert a is b and a is not c and a is not d
    a.close(1)
    assert not a.closed
    b.close(1)
    assert a.closed
    e = shared_publisher(["b:1"], config)
    assert e is not a
    for p in (c, d, e):
        p.close(1)


def _factory_publisher(clients: Clients) -> Callable[..., Publisher]:
    def build(*args: Any, **kwargs: Any) -> Publisher:
        return Publisher(
            *args,
            producer_factory=lambda c: FakeProducer(c),
            admin_factory=lambda c: FakeAdmin(c),
            **kwargs,
        )

    return build


def test_empty_bootstrap_is_refused() -> None:
    with pytest.raises(ValueError, match="kafkaEndpoints"):
        Publisher([], ProducerConfig())


def test_a_configuration_librdkafka_refuses_is_a_settings_error() -> None:
    config = ProducerConfig(properties={"linger.mss": 5})  # from_dict would refuse it already
    with pytest.raises(SettingsError, match=r"kafkaProducer\.properties.*linger\.mss"):
        Publisher(["127.0.0.1:1"], config, admin_factory=FakeAdmin)


def stats_json(acked: dict[str, dict[str, int]]) -> str:
    """librdkafka statistics naming each topic's partitions and their ``acked_msgid``."""
    broker = {"nodeid": 1, "rtt": {"cnt": 3, "p50": 800, "p99": 2000, "max": 2500},
              "int_latency": {"cnt": 3, "p50": 100, "p99": 300, "max": 400},
              "outbuf_latency": {"cnt": 3, "p50": 10, "p99": 30, "max": 40}}
    topics = {
        topic: {"partitions": {"-1": {"acked_msgid": 0, "leader": -1},
                               **{p: {"acked_msgid": n, "leader": 1} for p, n in parts.items()}}}
        for topic, parts in acked.items()
    }
    return json.dumps({"brokers": {"b1:9092/1": broker}, "topics": topics})


def test_failures_only_reports_counts_from_statistics_and_exact_once_settled(make: Any) -> None:
    pub, producer, _ = make(admin_setup=lambda a: a.topics.update({"t", "bad"}))
    assert producer.config["delivery.report.only.error"] is True
    stats_cb = producer.config["stats_cb"]
    producer.only_errors = True
    producer.fail_topics.add("bad")
    created(pub, "t", "bad")
    producer.set_up(False)
    for i in range(10):
        pub.publish("t", str(i).encode())
    pub.publish("bad", b"x")
    pub.publish("bad", b"y")
    assert pub.metrics.snapshot().topics["t"].sent == 0
    stats_cb(stats_json({"t": {"0": 3, "1": 1}}))  # 4 acknowledged so far, over 2 partitions
    snap = pub.metrics.snapshot().topics["t"]
    assert snap.sent == 4 and snap.latency.p50_s == pytest.approx(0.00091)
    assert snap.latency.p99_s == pytest.approx(0.00233)
    assert snap.latency.max_s == pytest.approx(0.00294)
    assert pub.connection_state() is ConnectionState.READY
    stats_cb(stats_json({"t": {"0": 1}}))  # counts never go down
    assert pub.metrics.snapshot().topics["t"].sent == 4
    producer.set_up(True)
    report = pub.flush(5)  # nothing outstanding: counts made exact without a report per message
    assert (report.delivered, report.failed, report.undelivered) == (10, 2, 0)
    snap2 = pub.metrics.snapshot()
    assert (snap2.topics["t"].sent, snap2.topics["bad"].sent, snap2.topics["bad"].failed) == (
        10, 0, 2)
    # statistics counting the failed messages too: failures are subtracted
    stats_cb(stats_json({"bad": {"0": 2}}))
    assert pub.metrics.snapshot().topics["bad"].sent == 0
    pub.publish("t", b"late")
    wait_until(lambda: pub.metrics.snapshot().topics["t"].sent == 11)  # the poller settles


def test_statistics_that_cannot_be_read_are_logged_not_raised(
    make: Any, caplog: pytest.LogCaptureFixture
) -> None:
    pub, producer, _ = make()
    with caplog.at_level(logging.WARNING):
        producer.config["stats_cb"]("{not json")
    assert "unreadable librdkafka statistics" in caplog.text
    assert pub.metrics.snapshot().sent == 0


def test_without_idempotence_every_delivery_is_reported(make: Any) -> None:
    pub, producer, _ = make({"properties": {"enable.idempotence": False, "acks": 1}},
                            admin_setup=lambda a: a.topics.add("t"))
    assert "delivery.report.only.error" not in producer.config
    assert "stats_cb" not in producer.config
    pub.publish("t", b"x")
    wait_until(lambda: pub.metrics.snapshot().sent == 1)


def test_under_block_the_publishing_thread_waits_for_room_nothing_is_relayed(make: Any) -> None:
    pub, producer, _ = make({"queue": {"maxMessages": 10, "blockTimeoutSeconds": 10}},
                            admin_setup=lambda a: a.topics.add("t"))
    created(pub, "t")
    producer.set_up(False)  # nothing is acknowledged: librdkafka's queue fills at 10
    held_seen: list[int] = []

    def publish_all() -> None:
        for i in range(30):
            pub.publish("t", str(i).encode(), b"k")
            held_seen.append(pub.metrics.snapshot().queued)

    thread = threading.Thread(target=publish_all)
    thread.start()
    wait_until(lambda: len(producer.queue) == 10)
    time.sleep(0.1)
    assert thread.is_alive() and len(held_seen) == 10  # the 11th waits in publish()
    assert pub._held.count == 0  # the publisher holds nothing: no backlog to relay
    producer.set_up(True)
    thread.join(10)
    assert not thread.is_alive()
    assert pub.flush(5).delivered == 30
    assert values(producer, "t") == [str(i).encode() for i in range(30)]
    assert max(held_seen) <= 10



def test_positional_produce_arguments_match_the_real_client() -> None:
    """The publisher calls ``Producer.produce`` positionally (keywords cost a third of the
    call). With the real client and no broker: a purge reports the value and key back from
    their positions, and the 7th and 8th positions are the timestamp and the headers (the
    headers themselves reach a real broker: tests/integration/test_event_headers.py)."""
    from confluent_kafka import Producer

    from aliecs_integration.publish import publisher as module

    reports: list[tuple[object, object]] = []
    producer = Producer({"bootstrap.servers": "127.0.0.1:1", "log_level": 0})
    producer.produce("t", b"value", b"key", module._ANY_PARTITION,
                     lambda err, msg: reports.append((err, msg)), None, module._NOW,
                     {"content-type": b"x", "event-id": b"y"})
    producer.purge()
    producer.poll(5)
    assert len(reports) == 1
    err, msg = reports[0]
    assert err is not None  # purged: never sent
    assert (msg.value(), msg.key()) == (b"value", b"key")  # type: ignore[attr-defined]
    with pytest.raises(TypeError, match="headers"):
        producer.produce("t", b"v", None, module._ANY_PARTITION, None, None, module._NOW, 42)
    with pytest.raises(TypeError, match="integer"):
        producer.produce("t", b"v", None, module._ANY_PARTITION, None, None, "not a timestamp")
