"""``Publisher``: one confluent-kafka producer shared by every topic, that loses nothing silently.

Contract of :meth:`Publisher.publish`:

- A topic is created (AdminClient; partitions and replication factor from ``kafkaProducer``,
  the factor clamped to the number of brokers with a warning) before its first message is
  produced; messages to a topic being created wait for it. Broker auto-creation is never used.
- Per-key order is kept for messages published from one thread: a message never overtakes an
  earlier one (librdkafka keeps order per partition with idempotence on).
- Undelivered messages are capped by ``queue.maxMessages`` and ``queue.maxBytes``, held in two
  queues. librdkafka's own (``queue.buffering.max.*``) has half of ``maxBytes`` and, under
  ``block`` and ``drop_newest``, all of ``maxMessages`` (half under ``drop_oldest``):
  messages handed to the client, batched, sent and retried through an outage
  (``message.timeout.ms`` is 0). The publisher's
  (:class:`~aliecs_integration.publish.held_messages.HeldMessages`) holds messages waiting for
  their topic to exist (and, under ``drop_oldest``, for room in librdkafka's queue): the
  other half of ``maxBytes``, and whatever librdkafka's queue leaves of ``maxMessages``.
  The sum of both never exceeds ``maxMessages``. So with the broker down since start (no
  topic can be created, librdkafka's queue stays empty) every message waits in the
  publisher's queue: all of ``maxMessages`` is usable (less a few client events not served
  yet), but only half of ``maxBytes``.
  Past the cap the ``overflow`` policy applies: ``block`` makes the publishing thread wait
  for room (librdkafka's queue drains as the broker acknowledges; no other thread relays
  messages) up to ``blockTimeoutSeconds``, then raises ``PublishError``; ``drop_newest``
  discards the new message; ``drop_oldest`` discards the publisher's oldest held message
  (messages already handed to librdkafka are never dropped). Every drop is counted in
  :attr:`metrics` and logged (at most every few seconds, with counts). A message larger than
  half of ``maxBytes`` can never fit and is refused with ``PublishError``.
- Deliveries are counted per topic in :attr:`metrics`, exactly (see
  :mod:`aliecs_integration.publish.delivery_tracker` for how): with idempotence on (the
  default, without a spool) librdkafka reports failures one by one and acknowledgements
  through its statistics, so no Python code runs per acknowledged message. The counts are a
  lower bound that lags by at most ``statistics.interval.ms`` while messages are outstanding,
  and exact
  whenever none is: after :meth:`Publisher.flush`, at :meth:`Publisher.close`, and within a
  poll interval of the queue becoming empty. A background poller thread serves the client's
  reports and statistics.
- librdkafka's own log lines go to the logger ``aliecs_integration.publish.publisher.librdkafka``,
  at most one per kind (facility and client) every 30 s with the count of those suppressed;
  the counts still pending are logged at :meth:`Publisher.close`.

- A topic deleted while messages flow to it is re-created: messages the client reports (or
  refuses) for a missing topic wait for it again instead of failing (see
  :mod:`aliecs_integration.publish.topic_admin`).
- With ``kafkaProducer.spool.path``, every message is journaled on disk before ``publish``
  returns and until it is acknowledged; what a crash left is replayed at the next start
  (:mod:`aliecs_integration.publish.spool`).

Use :func:`shared_publisher` to share one producer between plugins with equal settings.
"""

from __future__ import annotations

import collections
import functools
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NoReturn

import attrs
from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient

from aliecs_integration.errors import PublishError, SettingsError
from aliecs_integration.log_limits import RateLimitFilter
from aliecs_integration.publish.delivery_tracker import MISSING_TOPIC, DeliveryTracker
from aliecs_integration.publish.headers import Headers
from aliecs_integration.publish.held_messages import HeldMessages, size_of
from aliecs_integration.publish.metrics import Metrics
from aliecs_integration.publish.spool import Spool, SpooledDeliveries, journal_dir
from aliecs_integration.publish.topic_admin import TopicCreator
from aliecs_integration.records import ConnectionState, DeliveryReport
from aliecs_integration.settings.producer import OverflowPolicy, ProducerConfig

log = logging.getLogger(__name__)
_rdkafka_log = logging.getLogger(f"{__name__}.librdkafka")
_rdkafka_filter = RateLimitFilter(interval_s=30.0)  # a failed connect: ~2 lines/s per broker
_rdkafka_log.addFilter(_rdkafka_filter)  # (the publisher's own rate-limited warning says it too)

ClientFactory = Callable[[dict[str, Any]], Any]
"""Builds a client from a librdkafka config dict (tests inject fakes)."""

ADMIN_TIMEOUT_S = 5.0

# ``Producer.produce`` is called with positional arguments, in the order of confluent-kafka's
# signature: (topic, value, key, partition, on_delivery, callback, timestamp, headers).
# Keyword arguments cost a third of the call (0.97 -> 0.67 µs with three headers, measured).
_ANY_PARTITION = -1  # librdkafka's RD_KAFKA_PARTITION_UA: the partitioner chooses
_NOW = 0  # timestamp 0: librdkafka stamps the message


class Publisher:
    """One producer for ``bootstrap_servers``; thread-safe. Starts a poller thread and a
    topic-creation thread at construction; :meth:`close` stops them."""

    def __init__(
        self,
        bootstrap_servers: Sequence[str],
        config: ProducerConfig,
        *,
        name: str = "core-kafka",
        producer_factory: ClientFactory = Producer,
        admin_factory: ClientFactory = AdminClient,
    ) -> None:
        if not bootstrap_servers:
            raise ValueError(f"{name}: no bootstrap servers (kafkaEndpoints is empty)")
        self.bootstrap_servers = tuple(bootstrap_servers)
        self.config, self.name = config, name
        self.metrics = Metrics()
        self._count_published = self.metrics.count_published
        # issue 12: the optional on-disk spool (see publish/spool.py)
        self._spool = (Spool(journal_dir(config.spool_path, self.bootstrap_servers),
                             max_messages=config.max_messages, max_bytes=config.max_bytes)
                       if config.spool_path else None)
        self._deliveries = (
            DeliveryTracker(self.metrics, name, log, on_missing_topic=self._topic_gone)
            if self._spool is None else
            SpooledDeliveries(self._spool, self.metrics, name, log,
                              on_missing_topic=self._topic_gone)
        )
        split = config.queue_split()
        self.max_message_bytes = split.max_message_bytes
        self._cond = threading.Condition()
        self._created: set[str] = set()
        self._abandoned: collections.Counter[str] = collections.Counter()  # held at close
        self._held = HeldMessages(
            config,
            name=name,
            client_len=lambda: len(self._producer),
            cond=self._cond,
            record_dropped=self.metrics.record_dropped,
            logger=log,
        )
        self._backlog = self._held.backlog
        self._per_message = not config.counts_from_statistics()
        self._blocks = config.overflow is OverflowPolicy.BLOCK
        self._holds_overflow = config.overflow is OverflowPolicy.DROP_OLDEST
        self._settled = True  # nothing published since the last exact count
        self._closed, self._users = False, 1
        self._stop = threading.Event()
        log.info(
            "%s: producer for %s, properties %s, queue cap %d messages / %d bytes (%s)",
            *(name, ",".join(self.bootstrap_servers), config.masked_properties()),
            *(config.max_messages, config.max_bytes, config.overflow.value),
        )
        callbacks: dict[str, Any] = {
            "on_delivery": self._deliveries.on_delivery,
            "error_cb": self._deliveries.on_error,
        }
        if not self._per_message:
            callbacks["stats_cb"] = self._deliveries.on_stats
        try:
            self._producer = producer_factory(
                {
                    **config.client_config(self.bootstrap_servers),
                    **callbacks,
                    "logger": _rdkafka_log,
                }
            )
        except KafkaException as exc:  # e.g. an unknown property or a bad value
            if self._spool is not None:  # issue 12: release the journal for a next attempt
                self._spool.close()
            raise SettingsError(
                f"the Kafka client refused the configuration: {exc.args[0].str()}",
                key="kafkaProducer.properties",
            ) from None
        self.metrics.set_queue_depth_source(self._queue_depth)
        self._topics = TopicCreator(
            admin_factory({**config.admin_config(self.bootstrap_servers), "logger": _rdkafka_log}),
            partitions=config.partitions,
            replication_factor=config.replication_factor,
            name=name,
            bootstrap_servers=self.bootstrap_servers,
            on_created=self._mark_created,
            on_failed=self._give_up,
            on_reachable=self._set_reachable,
            wants_probe=lambda: not self._closed
            and self._deliveries.state is not ConnectionState.READY,
            timeout_s=ADMIN_TIMEOUT_S,
            refresh=lambda t: self._producer.list_topics(t, timeout=ADMIN_TIMEOUT_S),  # issue 12
        )
        self._poller = threading.Thread(target=self._poll_loop, name=f"{name}-poller", daemon=True)
        self._poller.start()
        if self._spool is not None:  # issue 12: journal first, then what a crash left
            setattr(self, "publish", self._spooled_publish)  # noqa: B010 (shadows the method)
            self._replay_spool()

    # ------------------------------------------------------------------ public API
    def publish(self, topic: str, value: bytes, key: bytes | None = None,
                headers: Headers | None = None) -> None:
        """Queue one message for ``topic`` with its Kafka ``headers`` (see
        :mod:`aliecs_integration.publish.headers`; the module docstring has the contract).

        Returns quickly unless the cap is reached under the ``block`` policy. Raises
        ``PublishError`` when the message is refused: publisher closed, message too large,
        or cap still reached after ``blockTimeoutSeconds`` (each counted as dropped).
        A message is counted as published once it is queued, dropped or refused.
        """
        if topic in self._created and not self._held.count:
            try:
                self._producer.produce(
                    topic, value, key, _ANY_PARTITION, None, None, _NOW, headers)
            except BufferError:  # librdkafka's queue is full
                if not self._holds_overflow:
                    self._when_full(topic, value, key, headers)
                    return
            except KafkaException as exc:
                if not self._missing(exc, topic):  # issue 12: a deleted topic waits instead
                    self._refuse(topic, f"the Kafka client refused it: {exc}")
            else:
                self._settled = False
                self._count_published(topic)
                return
        self._enqueue(topic, value, key, headers)

    @property
    def users(self) -> int:
        """How many plugins use this publisher now (see :func:`shared_publisher`)."""
        return self._users

    def prepare(self, topics: Iterable[str]) -> None:
        """Start creating ``topics`` in the background now (publish would do it on first use)."""
        with self._cond:
            self._topics.request(t for t in topics if t not in self._created)

    def flush(self, timeout_s: float) -> DeliveryReport:
        """Wait up to ``timeout_s`` for every held message to be delivered; report totals."""
        if self._closed:
            return self._report(0)
        deadline = time.monotonic() + max(0.0, timeout_s)
        while True:
            self._producer.poll(0)
            remaining = deadline - time.monotonic()
            if (self._held.count == 0 and len(self._producer) == 0) or remaining <= 0:
                break
            if self._held.count == 0:
                self._producer.flush(remaining)
            else:
                self._producer.poll(min(0.05, remaining))
                self._drain()
        self._settle()
        return self._report(self._held.count + len(self._producer))

    def close(self, timeout_s: float | None = None) -> DeliveryReport:
        """Flush within ``timeout_s`` (default ``flushTimeoutSeconds``), then stop: the rest is
        abandoned, counted as ``undelivered`` and logged. With several users (see
        :func:`shared_publisher`) only the last one's close stops the producer; the others flush.
        """
        timeout = self.config.flush_timeout_s if timeout_s is None else timeout_s
        with _registry_lock:
            self._users -= 1
            last = self._users <= 0
            if last and self in _registry:
                _registry.remove(self)
        if self._closed:
            return self._report(0)
        if not last:
            return self.flush(timeout)
        self.flush(timeout)
        self._stop.set()
        with self._cond:
            self._closed = True
            self._created.clear()
            self._abandoned.update(self._held.per_topic())
            abandoned = self._held.clear()
            self._cond.notify_all()
        self._poller.join()
        self._topics.stop(1.0)
        if len(self._producer):
            self._producer.purge(in_queue=True, in_flight=True, blocking=True)
            self._producer.flush(1.0)  # serves the purged messages' delivery reports
        self._settle()
        self._producer.close()
        if self._spool is not None:  # issue 12: what was not acknowledged stays journaled
            self._spool.close()
        self._deliveries.state = ConnectionState.SHUTDOWN
        _rdkafka_filter.release(_rdkafka_log)
        report = self._report(abandoned + self._deliveries.purged)
        self._held.log_pending_drops()
        log.log(
            logging.WARNING if report.undelivered else logging.INFO,
            "%s: closed: %d delivered, %d failed, %d dropped, %d undelivered",
            self.name,
            *attrs.astuple(report),
        )
        return report

    @property
    def closed(self) -> bool:
        return self._closed

    def connection_state(self) -> ConnectionState:
        """READY after a successful delivery or metadata request, TRANSIENT_FAILURE after a
        transport error, CONNECTING before either, SHUTDOWN after close."""
        return self._deliveries.state

    # ------------------------------------------------------------------ queueing
    def _queue_depth(self) -> int:
        return self._held.count + (0 if self._closed else len(self._producer))

    def _report(self, undelivered: int) -> DeliveryReport:
        snap = self.metrics.snapshot()
        return DeliveryReport(snap.sent, snap.failed, snap.dropped, undelivered)

    def _refuse(self, topic: str, why: str) -> NoReturn:
        """Refuse a new message: counted as published and dropped, logged, raised."""
        self._count_published(topic)
        raise self._refusal(topic, why)

    def _refuse_oversized(self, topic: str, size: int) -> NoReturn:
        self._refuse(
            topic,
            f"{size} bytes is more than half of queue.maxBytes "
            f"({self.max_message_bytes} bytes may be queued per message)",
        )

    def _refusal(self, topic: str, why: str) -> PublishError:
        """Count a refused message as dropped (not as published), log it; the error to raise."""
        self.metrics.record_dropped(topic)
        self.metrics.fold()  # after close no poller folds the published counts
        log.error("%s: message to %s refused: %s", self.name, topic, why)
        return PublishError(f"{self.name}: message to {topic!r} refused: {why}")

    def _try_produce(self, topic: str, value: bytes, key: bytes | None,
                     headers: Headers | None) -> bool:
        try:
            self._producer.produce(topic, value, key, _ANY_PARTITION, None, None, _NOW, headers)
            return True
        except BufferError:
            return False
        except KafkaException as exc:
            if self._missing(exc, topic):  # issue 12: held, waiting for the topic again
                return False
            self._refuse(topic, f"the Kafka client refused it: {exc}")

    def _when_full(self, topic: str, value: bytes, key: bytes | None,
                   headers: Headers | None) -> None:
        """librdkafka's queue had no room for a message to an existing topic: under ``block``
        wait for room on this thread (bounded by ``blockTimeoutSeconds``), under
        ``drop_newest`` drop it. A message that can never fit is refused."""
        size = size_of(value, key)
        if size > self.max_message_bytes:
            self._refuse_oversized(topic, size)
        if not self._blocks:
            with self._cond:
                self._held.drop(topic)
            self._count_published(topic)
            return
        deadline = time.monotonic() + self.config.block_timeout_s
        while True:
            time.sleep(0.0005)  # room frees as the broker acknowledges
            if self._closed:
                self._refuse(topic, "the publisher is closed")
            try:
                if not self._room_in_client():
                    raise BufferError
                self._producer.produce(
                    topic, value, key, _ANY_PARTITION, None, None, _NOW, headers)
            except BufferError:
                if time.monotonic() >= deadline:
                    self._count_published(topic)
                    with self._cond:
                        self._held.refuse_full(topic)
                continue
            except KafkaException as exc:
                if self._missing(exc, topic):  # issue 12: held, waiting for the topic again
                    self._enqueue(topic, value, key, headers)
                    return
                self._refuse(topic, f"the Kafka client refused it: {exc}")
            self._settled = False
            self._count_published(topic)
            return

    def _room_in_client(self) -> bool:
        """True when one more message handed to librdkafka keeps both queues within
        ``maxMessages`` (only in doubt while the publisher holds messages)."""
        return (
            not self._held.count
            or self._held.count + len(self._producer) < self.config.max_messages
        )

    def _enqueue(self, topic: str, value: bytes, key: bytes | None,
                 headers: Headers | None) -> None:
        size = size_of(value, key)
        full = False
        with self._cond:
            if self._closed:
                self._refuse(topic, "the publisher is closed")
            if size > self.max_message_bytes:
                self._refuse_oversized(topic, size)
            if self._backlog:
                self._drain_locked()  # this thread hands the backlog over first
            if topic in self._created and not self._backlog:
                if self._room_in_client() and self._try_produce(topic, value, key, headers):
                    self._settled = False
                    self._count_published(topic)
                    return
                full = not self._holds_overflow
            if not full:
                try:
                    self._hold(topic, value, key, headers, size)
                finally:
                    self._count_published(topic)
                return
        self._when_full(topic, value, key, headers)  # outside the lock: others may go on

    def _hold(self, topic: str, value: bytes, key: bytes | None, headers: Headers | None,
              size: int) -> None:
        """Hold a message in the publisher's queue (lock held), applying the overflow policy."""
        if self._held.over_cap(size) and not self._held.make_room(
            topic, size, lambda: self._closed
        ):
            return
        if self._closed:  # closed while blocked for room
            raise self._refusal(topic, "the publisher is closed")
        exists = topic in self._created
        self._held.add((topic, value, key, time.monotonic(), headers), topic_exists=exists)
        if not exists:
            self._request(topic)

    def _drain(self) -> None:
        """Hand the backlog to librdkafka, oldest first, while it has room."""
        with self._cond:
            if not self._closed:
                self._drain_locked()

    def _drain_locked(self) -> None:
        moved = False
        while self._backlog:
            topic, value, key, queued, headers = self._backlog[0]
            try:
                if self._per_message:
                    self._producer.produce(
                        topic, value, key, _ANY_PARTITION,
                        functools.partial(self._deliveries.on_delivery_since, queued),
                        None, _NOW, headers,
                    )
                else:
                    self._producer.produce(
                        topic, value, key, _ANY_PARTITION, None, None, _NOW, headers)
            except BufferError:
                break
            except KafkaException as exc:
                if self._missing(exc, topic):  # issue 12: back to waiting for the topic
                    item = self._backlog[0]
                    self._held.pop_backlog()
                    self._held.add(item, topic_exists=False)
                    continue
                self.metrics.record_dropped(topic)
                log.error(
                    "%s: message to %s dropped: the Kafka client refused it: %s",
                    self.name,
                    topic,
                    exc,
                )
            self._held.pop_backlog()
            self._settled = False
            moved = True
        if moved:
            self._cond.notify_all()

    def _settle(self) -> None:
        """Make the acknowledged counts exact when nothing is outstanding in librdkafka:
        every message counted as published is then acknowledged, failed, purged, dropped or
        still held by the publisher (abandoned at close). Counts read in that order, so a
        message published meanwhile can only make the result smaller (counts never go
        down: :meth:`Metrics.raise_sent`)."""
        if self._per_message:
            return  # every delivery is counted as it is reported
        published = {topic: counts[0] for topic, counts in self.metrics.outcomes().items()}
        with self._cond:  # drops of held messages are counted with this lock held
            if len(self._producer):
                return
            held = self._held.per_topic()
            held.update(self._abandoned)
            dropped = {topic: counts[3] for topic, counts in self.metrics.outcomes().items()}
        failed, purged = self._deliveries.failed_by_topic, self._deliveries.purged_by_topic
        self.metrics.raise_sent(
            {
                topic: count - dropped.get(topic, 0) - failed[topic] - purged[topic] - held[topic]
                for topic, count in published.items()
            }
        )
        self._settled = True

    # ------------------------------------------------------------------ threads
    def _poll_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._producer.poll(0.1)  # re-raises what a callback raised
                self.metrics.fold()
                if self._backlog:
                    self._drain()
                if not self._settled and not len(self._producer):
                    self._settle()
            except Exception:  # the poller must survive: it serves every delivery report
                log.exception("%s: error while serving delivery reports", self.name)

    def _request(self, topic: str) -> None:
        if topic not in self._created:
            self._topics.request((topic,))

    def _set_reachable(self, ok: bool) -> None:
        if not self._closed:
            self._deliveries.state = (
                ConnectionState.READY if ok else ConnectionState.TRANSIENT_FAILURE
            )

    def _give_up(self, topic: str, reason: str) -> None:
        with self._cond:
            lost = self._held.take_waiting(topic)
            if lost:
                self.metrics.record_dropped(topic, len(lost))
            self._cond.notify_all()
        log.error(
            "%s: cannot create topic %s: %s; %d waiting message(s) dropped",
            self.name,
            topic,
            reason,
            len(lost),
        )

    # --- issue 12: the spool (publish/spool.py) ---------------------------------------------
    def _spooled_publish(self, topic: str, value: bytes, key: bytes | None = None,
                         headers: Headers | None = None) -> None:
        """:meth:`publish` with the spool on: journaled (headers too) before anything else; a
        message refused here (counted as dropped) leaves the journal."""
        assert self._spool is not None
        self._spool.append(topic, value, key, headers)
        try:
            Publisher.publish(self, topic, value, key, headers)
        except PublishError:
            self._spool.done(topic, value, key)
            raise

    def _replay_spool(self) -> None:
        assert self._spool is not None
        left = self._spool.replay()
        refused = 0
        for topic, value, key, headers in left:
            try:
                self._spooled_publish(topic, value, key, headers)
            except PublishError:
                refused += 1
        if left:
            log.warning("%s: spool %s: replayed %d message(s) a previous run left "
                        "unacknowledged (%d refused)", self.name, self._spool.path, len(left),
                        refused)

    def spool_stats(self) -> dict[str, Any] | None:
        """The spool's entries, bytes, replayed and trimmed counts; None without a spool."""
        return None if self._spool is None else self._spool.stats()

    # --- issue 12: a topic deleted while running is re-created (see topic_admin) -------------
    def _missing(self, exc: KafkaException, topic: str) -> bool:
        """True (and the topic asked for again) when ``exc`` says ``topic`` does not exist."""
        if not exc.args or getattr(exc.args[0], "code", lambda: None)() not in MISSING_TOPIC:
            return False
        with self._cond:
            if self._closed:
                return False
            self._created.discard(topic)
            self._topics.request((topic,), again=True)
        return True

    def _topic_gone(self, msg: Any) -> bool:
        """Delivery report of a message whose topic no longer exists (deleted under us): hold
        it again, waiting for the topic, and ask for the topic to be re-created. False once
        closed (the message then counts as failed)."""
        topic = msg.topic()
        with self._cond:
            if self._closed:
                return False
            if topic in self._created:
                self._created.discard(topic)
                log.warning("%s: topic %s disappeared (deleted?): re-creating it; its "
                            "messages wait for it", self.name, topic)
            self._held.add((topic, msg.value(), msg.key(), time.monotonic(), msg.headers()),
                           topic_exists=False)
            self._topics.request((topic,), again=True)
        return True
    # --- end issue 12 ---------------------------------------------------------------------

    def _mark_created(self, topics: set[str]) -> None:
        with self._cond:
            if self._closed:
                return
            self._held.promote(sorted(topics))
            self._created |= topics
            self._cond.notify_all()
        self._drain()


_registry_lock = threading.Lock()
_registry: list[Publisher] = []


def shared_publisher(
    bootstrap_servers: Sequence[str], config: ProducerConfig, *, name: str = "core-kafka"
) -> Publisher:
    """The process-wide publisher for these servers and this config, created on first use.

    Each call counts one user; each user calls :meth:`Publisher.close` once and the producer
    stops at the last close. A different config for the same servers gets its own publisher.
    """
    servers = tuple(bootstrap_servers)
    with _registry_lock:
        for publisher in _registry:
            if publisher.bootstrap_servers == servers and publisher.config == config:
                publisher._users += 1
                return publisher
        publisher = Publisher(servers, config, name=name)
        _registry.append(publisher)
        return publisher
