"""In-process fakes of the confluent_kafka clients, shared by the unit tests.

One fake per concept, each a superset of what the tests need:

* :class:`FakeMessage`: a message as ``Producer`` delivery reports and ``Consumer.poll`` give it.
* :class:`FakeProducer`: ``confluent_kafka.Producer`` with a bounded queue (``BufferError`` when
  full, like librdkafka's ``queue.buffering.max.*``), delivery reports served by ``poll``/
  ``flush`` while the "broker" is up, per-topic failures, ``purge``.
* :class:`FakeAdmin`: the ``AdminClient`` calls the publisher and the topic admin make
  (metadata, ``create_topics`` futures, ``poll``), with a gate that holds topic creation, a
  switch and a countdown that make the cluster unreachable.
* :class:`FakeConsumer`: ``Consumer.poll`` over a fixed list of messages.

Tests against the real servers use the fixtures of ``tests/servers.py`` instead.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from types import SimpleNamespace
from typing import Any

from confluent_kafka import KafkaError, KafkaException

CONSUMED_TIMESTAMP = (1, 1_700_000_000_000)
"""``(TIMESTAMP_CREATE_TIME, ms)``: what :meth:`FakeMessage.timestamp` returns by default."""


class FakeMessage:
    """A ``confluent_kafka.Message``: what ``topic()``, ``value()``, ``key()``, ``partition()``,
    ``offset()``, ``error()``, ``timestamp()`` and ``latency()`` return is given at creation."""

    def __init__(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None = None,
        *,
        partition: int = 0,
        offset: int = 0,
        error: Any = None,
        timestamp: tuple[int, int] = CONSUMED_TIMESTAMP,
        latency: float = 0.002,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        self._topic, self._value, self._key, self._headers = topic, value, key, headers
        self._partition, self._offset, self._error = partition, offset, error
        self._timestamp, self._latency = timestamp, latency

    def topic(self) -> str:
        return self._topic

    def value(self) -> bytes | None:
        return self._value

    def key(self) -> bytes | None:
        return self._key

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def error(self) -> Any:
        return self._error

    def timestamp(self) -> tuple[int, int]:
        return self._timestamp

    def headers(self) -> list[tuple[str, bytes]] | None:
        return self._headers

    def latency(self) -> float:
        return self._latency


def partition_eof(topic: str, partition: int = 0) -> FakeMessage:
    """The event a consumer gives at the end of a partition (``_PARTITION_EOF``)."""
    return FakeMessage(topic, None, partition=partition,
                       error=KafkaError(KafkaError._PARTITION_EOF))


class FakeProducer:
    """``confluent_kafka.Producer`` built from the publisher's config dict.

    ``produce`` queues (``BufferError`` past ``queue.buffering.max.messages``/``.kbytes``,
    ``MSG_SIZE_TOO_LARGE`` above ``refuse_bytes``); ``poll``/``flush`` serve delivery reports
    while :attr:`up` (``set_up(False)`` holds them), failing topics in :attr:`fail_topics`;
    delivered messages are recorded in :attr:`delivered` as ``(topic, key, value)`` (with
    :attr:`only_errors`, like ``delivery.report.only.error``, only failures are reported). ``len()``
    counts queued messages and reports being served, like librdkafka.
    """

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.max_messages = int(config["queue.buffering.max.messages"])
        self.max_bytes = int(config["queue.buffering.max.kbytes"]) * 1024
        self.default_cb: Callable[..., None] = config["on_delivery"]
        self.error_cb: Callable[[KafkaError], None] = config["error_cb"]
        self.cond = threading.Condition()
        self.queue: list[tuple[FakeMessage, Callable[..., None]]] = []
        self.delivered: list[tuple[str, bytes | None, bytes]] = []
        self.delivered_headers: list[list[tuple[str, bytes]] | None] = []
        self.up = True
        self.fail_topics: set[str] = set()
        self.refuse_bytes: int | None = None
        self.closed = False
        self.purged = 0
        self.serving = 0
        self.only_errors = False  # like delivery.report.only.error (tests turn it on)

    def _bytes(self) -> int:
        return sum(len(m.value() or b"") + len(m.key() or b"") for m, _ in self.queue)

    def produce(
        self,
        topic: str,
        value: bytes,
        key: bytes | None = None,
        partition: int = -1,
        on_delivery: Callable[..., None] | None = None,
        callback: Callable[..., None] | None = None,
        timestamp: int = 0,
        headers: dict[str, bytes] | list[tuple[str, bytes]] | None = None,
    ) -> None:
        """confluent-kafka's signature, positional order included (the publisher relies on it)."""
        assert not self.closed, "produce after close"
        assert partition == -1 and callback is None and timestamp == 0, "unexpected arguments"
        if self.refuse_bytes is not None and len(value) > self.refuse_bytes:
            raise KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE))
        with self.cond:
            size = len(value) + len(key or b"")
            if len(self.queue) >= self.max_messages or self._bytes() + size > self.max_bytes:
                raise BufferError("Local: Queue full")
            listed = list(headers.items()) if isinstance(headers, dict) else headers
            self.queue.append((FakeMessage(topic, value, key, headers=listed),
                               on_delivery or self.default_cb))
            self.cond.notify_all()

    def set_up(self, up: bool) -> None:
        with self.cond:
            self.up = up
            self.cond.notify_all()

    def poll(self, timeout: float = -1) -> int:
        with self.cond:
            if not (self.up and self.queue):
                self.cond.wait(timeout if timeout >= 0 else None)
            if not self.up:
                return 0
            batch, self.queue = self.queue, []
            self.serving += len(batch)  # like librdkafka: counted until the report is served
        for msg, cb in batch:
            if msg.topic() in self.fail_topics:
                cb(KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED), msg)
            else:
                self.delivered.append((msg.topic(), msg.key(), msg.value() or b""))
                self.delivered_headers.append(msg.headers())
                if not self.only_errors:
                    cb(None, msg)
            with self.cond:
                self.serving -= 1
        return len(batch)

    def flush(self, timeout: float = -1) -> int:
        deadline = time.monotonic() + (timeout if timeout >= 0 else 3600)
        while len(self) and time.monotonic() < deadline:
            self.poll(min(0.02, max(0.0, deadline - time.monotonic())))
        return len(self)

    def purge(self, in_queue: bool = True, in_flight: bool = True, blocking: bool = True) -> None:
        with self.cond:
            batch, self.queue = self.queue, []
        for msg, cb in batch:
            self.purged += 1
            cb(KafkaError(KafkaError._PURGE_QUEUE), msg)

    def close(self) -> bool:
        self.closed = True
        return True

    def __len__(self) -> int:
        return len(self.queue) + self.serving


class FakeAdmin:
    """``confluent_kafka.admin.AdminClient``: metadata (``list_topics``), ``create_topics``
    futures and ``poll``.

    ``brokers`` brokers; ``existing`` topics exist from the start (one partition, led by broker
    1); creating a topic named in ``errors`` fails with that ``KafkaError`` code. Every
    ``create_topics`` spec is recorded in :attr:`requests` and every ``poll`` counted in
    :attr:`polls`. Knobs: clear :attr:`gate` to hold ``create_topics`` (up to 10 s); set
    :attr:`up` False to make metadata requests fail with ``_TRANSPORT``; ``unreachable_for``
    makes the first that many metadata requests fail the same way.
    """

    def __init__(
        self,
        config: dict[str, Any] | None = None,
        *,
        brokers: int = 1,
        existing: Iterable[str] = (),
        errors: dict[str, int] | None = None,
        unreachable_for: int = 0,
    ) -> None:
        self.config = config or {}
        self.brokers = brokers
        self.topics = set(existing)
        self.errors = errors or {}
        self.unreachable_for = unreachable_for
        self.gate = threading.Event()
        self.gate.set()
        self.up = True
        self.requests: list[Any] = []
        self.polls = 0

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> Any:
        if not self.up:
            time.sleep(0.01)
            raise KafkaException(KafkaError(KafkaError._TRANSPORT))
        if self.unreachable_for > 0:
            self.unreachable_for -= 1
            raise KafkaException(KafkaError(KafkaError._TRANSPORT))
        names = self.topics if topic is None else {topic} & self.topics
        part = SimpleNamespace(leader=1)
        return SimpleNamespace(
            brokers={i: object() for i in range(1, self.brokers + 1)},
            topics={t: SimpleNamespace(error=None, partitions={0: part}) for t in names},
        )

    def poll(self, timeout: float = -1) -> int:
        self.polls += 1
        return 0

    def create_topics(self, new_topics: list[Any], **_: Any) -> dict[str, Future[None]]:
        self.gate.wait(10)
        out: dict[str, Future[None]] = {}
        for spec in new_topics:
            self.requests.append(spec)
            fut: Future[None] = Future()
            code = self.errors.get(spec.topic)
            if code is None:
                self.topics.add(spec.topic)
                fut.set_result(None)
            else:
                fut.set_exception(KafkaException(KafkaError(code)))
            out[spec.topic] = fut
        return out


class FakeConsumer:
    """``confluent_kafka.Consumer.poll`` handing out ``messages`` in order (``None`` entries are
    empty polls), then ``None`` forever."""

    def __init__(self, messages: Iterable[FakeMessage | None]) -> None:
        self.messages: Iterator[FakeMessage | None] = iter(messages)

    def poll(self, timeout: float) -> FakeMessage | None:
        return next(self.messages, None)
