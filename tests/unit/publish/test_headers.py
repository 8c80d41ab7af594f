"""``publish/headers.py``: the headers' values, unique event ids, reading the content type back,
and the publisher handing them to the Kafka client on every path (direct and held)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from aliecs_integration.pb import events_pb2, kafka_pb2
from aliecs_integration.publish.headers import HeaderMaker, content_type, message_type_name
from aliecs_integration.publish.reader import decode
from tests.fakes import FakeMessage
from tests.unit.publish.test_publisher import created, make, wait_until

__all__ = ["make"]  # the fixture, imported


def test_values() -> None:
    assert content_type(events_pb2.Event) == b"application/x-protobuf; messageType=events.Event"
    headers = HeaderMaker(kafka_pb2.ActiveRunsList, "inst")()
    assert list(headers) == ["content-type", "event-id", "source-instance-id"]
    assert headers["content-type"] == b"application/x-protobuf; messageType=kafka.ActiveRunsList"
    assert headers["source-instance-id"] == b"inst"
    prefix, _, number = headers["event-id"].decode().rpartition("-")
    assert len(prefix) == 16 and int(prefix, 16) >= 0 and int(number) > 0


def test_event_ids_are_unique_across_makers_and_threads() -> None:
    makers = [HeaderMaker(events_pb2.Event, "a"), HeaderMaker(kafka_pb2.ActiveRunsList, "b")]
    found: list[bytes] = []
    lock = threading.Lock()

    def work(maker: Callable[[], dict[str, bytes]]) -> None:
        mine = [maker()["event-id"] for _ in range(5000)]
        with lock:
            found.extend(mine)

    threads = [threading.Thread(target=work, args=(makers[i % 2],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(found) == len(set(found)) == 20000


@pytest.mark.parametrize(("headers", "expected"), [
    (None, None),
    ([], None),
    ([("other", b"x")], None),
    ([("content-type", b"application/x-protobuf; messageType=events.Event")], "events.Event"),
    ([("Content-Type", b'application/x-protobuf;charset=x; messagetype="kafka.ActiveRunsList"')],
     "kafka.ActiveRunsList"),
    ([("content-type", b"application/json")], None),
    ([("content-type", b"application/x-protobuf")], None),
    ([("content-type", None)], None),
])
def test_message_type_name(headers: Any, expected: str | None) -> None:
    assert message_type_name(headers) == expected


def test_decode_prefers_the_header_and_names_an_unknown_type() -> None:
    notification = kafka_pb2.NewStateNotification(timestamp=3).SerializeToString()
    by_header = decode(FakeMessage("aliecs.run", notification, headers=[
        ("content-type", b"application/x-protobuf; messageType=NewStateNotification")]),
        events_pb2.Event)
    assert by_header.ok and by_header.type_name == "kafka.NewStateNotification"
    assert dict(by_header.headers)["content-type"].endswith("NewStateNotification")
    unknown = decode(FakeMessage("aliecs.run", b"", headers=[
        ("content-type", b"application/x-protobuf; messageType=a.B")]), events_pb2.Event)
    assert not unknown.ok and unknown.type_name == "a.B"
    assert "names message type 'a.B', which this reader does not know" in unknown.error
    plain = decode(FakeMessage("aliecs.run", b""), events_pb2.Event)
    assert plain.ok and plain.type_name == "events.Event" and plain.headers == ()


def test_the_publisher_hands_the_headers_over_on_every_path(make: Any) -> None:
    pub, producer, admin = make()
    created(pub, "aliecs.a")
    pub.publish("aliecs.a", b"direct", None, [("h", b"1")])
    admin.gate.clear()  # the next topic waits for its creation: its messages are held
    pub.publish("aliecs.b", b"held", b"k", [("h", b"2")])
    pub.publish("aliecs.b", b"none", b"k")
    admin.gate.set()
    wait_until(lambda: len(producer.delivered) == 3)
    assert [(t, v) for t, _, v in producer.delivered] == [
        ("aliecs.a", b"direct"), ("aliecs.b", b"held"), ("aliecs.b", b"none")]
    assert producer.delivered_headers == [[("h", b"1")], [("h", b"2")], None]


def test_a_replay_from_the_spool_sends_the_same_headers(make: Any, tmp_path: Any) -> None:
    config = {"spool": {"path": str(tmp_path / "spool")}}
    first, producer, _ = make(config)
    created(first, "aliecs.a")
    producer.set_up(False)  # nothing is acknowledged: everything stays journaled
    sent = [[("event-id", f"x-{i}".encode()), ("empty", b"")] for i in range(3)]
    for i, headers in enumerate(sent):
        first.publish("aliecs.a", f"v{i}".encode(), b"k", headers)
    first.publish("aliecs.a", b"bare", b"k")
    first.close(0.2)
    second, replaying, _ = make(config)
    wait_until(lambda: len(replaying.delivered) == 4)
    assert [v for _, _, v in replaying.delivered] == [b"v0", b"v1", b"v2", b"bare"]
    assert replaying.delivered_headers == [*sent, None]
    second.close(2.0)
