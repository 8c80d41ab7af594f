"""PublisherSwitch: while other threads publish, a replaced publisher gets every message
published before the switch, the new one every message after, none both or neither, and a
key's messages reach the new one only after the old one was flushed."""

from __future__ import annotations

import itertools
import threading
import time

from aliecs_integration.publish.headers import Headers
from aliecs_integration.publish.switch import PublisherSwitch
from aliecs_integration.records import ConnectionState, DeliveryReport

CLOCK = itertools.count()


class Fake:
    def __init__(self, name: str) -> None:
        self.name = name
        self.lock = threading.Lock()
        self.got: list[tuple[int, bytes | None, bytes]] = []  # (clock, key, value)
        self.flushed_at: int | None = None
        self.closed = False

    def publish(self, topic: str, value: bytes, key: bytes | None = None,
                headers: Headers | None = None) -> None:
        if value[-1] % 5 == 0:  # the digits 2 and 7
            time.sleep(0.0001)  # a slow publish now and then: switches meet publishes under way
        assert not self.closed, f"{self.name}: publish after close"
        with self.lock:
            self.got.append((next(CLOCK), key, value))  # when the message was handed over

    def flush(self, timeout_s: float) -> DeliveryReport:
        self.flushed_at = next(CLOCK)  # when the flush began
        time.sleep(0.002)  # publishes let through meanwhile would show
        return DeliveryReport(len(self.got), 0, 0, 0)

    def close(self, timeout_s: float | None = None) -> DeliveryReport:
        self.closed = True
        return DeliveryReport(len(self.got), 0, 0, 0)

    def connection_state(self) -> ConnectionState:
        return ConnectionState.READY


def test_every_message_reaches_exactly_one_publisher_in_order_across_switches() -> None:
    publishers = [Fake("p0")]
    switch = PublisherSwitch(publishers[0])
    threads, per_thread = 6, 3000
    refused: list[int] = []
    errors: list[BaseException] = []

    def produce(n: int) -> None:
        key = f"env{n}".encode()
        try:
            for i in range(per_thread):
                if not switch.publish("t", f"{n}:{i}".encode(), key):
                    refused.append(i)
        except BaseException as exc:  # reported by the test
            errors.append(exc)

    workers = [threading.Thread(target=produce, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    for k in range(1, 8):
        publishers.append(Fake(f"p{k}"))
        switch.replace(publishers[-1], 5.0)
        time.sleep(0.005)
    for w in workers:
        w.join()
    assert errors == [] and refused == []
    values = [v for p in publishers for _, _, v in p.got]
    assert len(values) == len(set(values)) == threads * per_thread  # none lost, none twice
    for n in range(threads):
        seen = [int(v.split(b":")[1]) for p in publishers for _, k, v in p.got
                if k == f"env{n}".encode()]
        assert seen == list(range(per_thread))  # in order, publisher after publisher
    for old, new in itertools.pairwise(publishers):
        assert old.closed and old.flushed_at is not None
        assert all(clock < old.flushed_at for clock, _, _ in old.got)  # none once flushing
        assert all(clock > old.flushed_at for clock, _, _ in new.got)
    assert not publishers[-1].closed
    report = switch.delivery_report(DeliveryReport(len(publishers[-1].got), 0, 0, 0))
    assert report == DeliveryReport(threads * per_thread, 0, 0, 0)


def test_switched_off_publishes_nothing_and_keeps_the_totals() -> None:
    p = Fake("p")
    switch = PublisherSwitch(p)
    assert switch.publish("t", b"a")
    assert switch.replace(None, 1.0) == DeliveryReport(1, 0, 0, 0)
    assert p.closed and switch.current is None
    assert switch.publish("t", b"b") is False
    assert switch.delivery_report(None) == DeliveryReport(1, 0, 0, 0)
    assert PublisherSwitch(None).delivery_report(None) is None
