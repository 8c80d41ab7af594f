"""Reading ``aliecs.*`` topics back and decoding each message with the type it carries.

The message type is the one its ``content-type`` header names
(:mod:`aliecs_integration.publish.headers`) when it has one, else the one its topic name
implies (:func:`~aliecs_integration.publish.topics.message_type_for_topic`): ``events.Event``
on core topics, ``kafka.NewStateNotification`` or ``kafka.ActiveRunsList`` on legacy ones.
A header naming a type this reader does not know gives an undecodable :class:`Decoded` saying
so. Bytes that do not decode give a :class:`Decoded` with the error, never an exception. Used
by ``consume``, the demo and the tests. Errors are
:class:`~aliecs_integration.errors.ReadError` (exit 1 on the command line) and
:class:`~aliecs_integration.errors.UnknownTopic` (exit 2).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal, Protocol

import attrs
from google.protobuf import json_format, text_format
from google.protobuf.message import DecodeError, Message

from aliecs_integration.errors import ReaderConfigError, ReadError, UnknownTopic
from aliecs_integration.publish.headers import header_text, message_type_name

CLIENT_LOGGER = "aliecs_integration.librdkafka"
"""The logger that receives the Kafka consumer's and admin client's own log lines."""


HEX_PREFIX_BYTES = 32

Format = Literal["json", "text"]

Start = Literal["beginning", "end"]

class KafkaMessage(Protocol):
    """What a consumed message offers (``confluent_kafka.Message``)."""

    def error(self) -> Any: ...
    def topic(self) -> str | None: ...
    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...
    def key(self) -> bytes | None: ...
    def value(self) -> bytes | None: ...
    def timestamp(self) -> tuple[int, int]: ...
    def headers(self) -> list[tuple[str, bytes]] | None: ...

class KafkaConsumer(Protocol):
    """The part of ``confluent_kafka.Consumer`` the loop uses."""

    def poll(self, timeout: float) -> KafkaMessage | None: ...

@attrs.frozen
class Decoded:
    """One consumed message: ``message`` when it decoded, else ``error`` (and ``message`` None)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int | None
    type_name: str
    message: Message | None = None
    error: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    """The message's Kafka headers as text, in order."""

    @property
    def ok(self) -> bool:
        return self.message is not None

def message_types(topics: Sequence[str], root: str) -> dict[str, type[Message]]:
    """Each topic's message class; raises :class:`UnknownTopic` naming the first unknown topic."""
    from aliecs_integration.publish.topics import message_type_for_topic

    result: dict[str, type[Message]] = {}
    for topic in topics:
        try:
            result[topic] = message_type_for_topic(topic, root)
        except ValueError as exc:
            raise UnknownTopic(str(exc)) from None
    return result

def _known_types() -> dict[str, type[Message]]:
    from aliecs_integration.pb import events_pb2, kafka_pb2

    found: dict[str, type[Message]] = {}
    for cls in (events_pb2.Event, kafka_pb2.NewStateNotification, kafka_pb2.ActiveRunsList):
        found[cls.DESCRIPTOR.full_name] = found[cls.DESCRIPTOR.name] = cls
    return found


KNOWN_TYPES = _known_types()
"""The message types a ``content-type`` header may name (full name, or the bare name)."""


def decode(msg: KafkaMessage, message_type: type[Message]) -> Decoded:
    """Parse ``msg``'s value as the type its ``content-type`` header names, else as
    ``message_type`` (the topic's); a parse failure or an unknown type in the header is
    returned, never raised."""
    kind, ts = msg.timestamp()
    headers = msg.headers()
    named = message_type_name(headers)
    if named is not None and named in KNOWN_TYPES:
        message_type = KNOWN_TYPES[named]
    base = Decoded(
        topic=msg.topic() or "",
        partition=msg.partition() or 0,
        offset=msg.offset() or 0,
        key=msg.key(),
        value=msg.value(),
        timestamp_ms=ts if kind else None,
        type_name=message_type.DESCRIPTOR.full_name,
        headers=tuple(header_text(headers).items()) if headers else (),
    )
    if named is not None and named not in KNOWN_TYPES:
        known = ", ".join(sorted(n for n in KNOWN_TYPES if "." in n))
        return attrs.evolve(base, type_name=named, error=(
            f"its content-type header names message type {named!r}, which this reader does not "
            f"know (known: {known})"))
    if base.value is None:
        return attrs.evolve(base, error="no value (a tombstone)")
    parsed = message_type()
    try:
        parsed.ParseFromString(base.value)
    except (DecodeError, RuntimeError, ValueError) as exc:
        return attrs.evolve(base, error=f"cannot decode as {base.type_name}: {exc}")
    return attrs.evolve(base, message=parsed)

def _key_text(key: bytes | None) -> str | None:
    if key is None:
        return None
    try:
        return key.decode("utf-8")
    except UnicodeDecodeError:
        return f"hex:{key.hex()}"

def _hex_prefix(value: bytes | None) -> str:
    data = value or b""
    more = "…" if len(data) > HEX_PREFIX_BYTES else ""
    return data[:HEX_PREFIX_BYTES].hex() + more

def json_line(item: Decoded) -> str:
    """One JSON object: where the message came from, then ``message`` or ``error`` + ``hex``."""
    out: dict[str, Any] = {
        "topic": item.topic, "partition": item.partition, "offset": item.offset,
        "key": _key_text(item.key), "timestampMs": item.timestamp_ms, "type": item.type_name,
    }
    if item.headers:
        out["headers"] = dict(item.headers)
    if item.message is not None:
        out["message"] = json_format.MessageToDict(item.message)
    else:
        out["error"] = item.error
        out["size"] = len(item.value or b"")
        out["hexPrefix"] = _hex_prefix(item.value)
    return json.dumps(out, ensure_ascii=False)

def text_line(item: Decoded) -> str:
    """``topic[partition]@offset key=… type {text format}`` or the same with ``UNDECODABLE``."""
    where = f"{item.topic}[{item.partition}]@{item.offset} key={_key_text(item.key) or '-'}"
    if item.message is not None:
        body = text_format.MessageToString(item.message, as_one_line=True)
        return f"{where} {item.type_name} {{{body}}}"
    size = len(item.value or b"")
    return f"{where} UNDECODABLE ({size} bytes): {item.error}; hex {_hex_prefix(item.value)}"

def raw_frame(item: Decoded) -> bytes:
    """The message's value as it is on the topic, prefixed by its length as a 4-byte big-endian
    integer (kcat's ``-f '%R%s'``, pq's ``--stream i32be``); a tombstone is an empty frame."""
    value = item.value or b""
    return len(value).to_bytes(4, "big") + value


def environment_ids(message: Message) -> set[str]:
    """The environment ids a message is about: the ``environmentId`` of an ``events.Event``'s
    payload, of a ``NewStateNotification``'s ``envInfo``, of every run of an ``ActiveRunsList``."""
    return {env for env, _ in _env_runs(message) if env}


def run_numbers(message: Message) -> set[int]:
    """The run numbers a message carries (payloads, ``envInfo`` or active runs); 0 means none."""
    return {run for _, run in _env_runs(message) if run}


def _env_runs(message: Message) -> list[tuple[str, int]]:
    any_message: Any = message
    name = message.DESCRIPTOR.full_name
    if name == "events.Event":
        payload = message.WhichOneof("Payload")
        if payload is None:
            return []
        inner: Any = getattr(message, payload)
        fields = inner.DESCRIPTOR.fields_by_name
        env = inner.environmentId if "environmentId" in fields else ""
        run = inner.runNumber if "runNumber" in fields else 0
        return [(env, run)]
    if name == "kafka.NewStateNotification":
        info = any_message.envInfo
        return [(info.environmentId, info.runNumber)]
    if name == "kafka.ActiveRunsList":
        return [(r.environmentId, r.runNumber) for r in any_message.activeRuns]
    return []


@attrs.frozen
class Filter:
    """Which messages to keep: about one of ``environments`` (when given), carrying run
    ``run_number`` (when given), with a Kafka timestamp within ``[since_ms, until_ms]``.

    A message that does not decode never matches an environment or run filter.
    """

    environments: frozenset[str] = frozenset()
    run_number: int | None = None
    since_ms: int | None = None
    until_ms: int | None = None

    def matches(self, item: Decoded) -> bool:
        ts = item.timestamp_ms
        if self.since_ms is not None and (ts is None or ts < self.since_ms):
            return False
        if self.until_ms is not None and (ts is None or ts > self.until_ms):
            return False
        if not self.environments and self.run_number is None:
            return True
        if item.message is None:
            return False
        if self.environments and not (environment_ids(item.message) & self.environments):
            return False
        return self.run_number is None or self.run_number in run_numbers(item.message)


_RELATIVE = re.compile(r"(?P<n>\d+(?:\.\d+)?)\s*(?P<unit>ms|s|m|h|d)")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def parse_time(text: str, *, now_ms: int | None = None) -> int:
    """A point in time as ms since the epoch, from ``text``: a duration ago (``90s``, ``15m``,
    ``2h``, ``1d``), ms since the epoch (13 digits or more), or ISO 8601
    (``2026-12-02T06:40``, ``2026-12-02 06:40:05+01:00``; without a zone: UTC).

    Raises ``ValueError`` naming the text and the accepted forms.
    """
    value = text.strip()
    if (m := _RELATIVE.fullmatch(value)) is not None:
        now = now_ms if now_ms is not None else int(time.time() * 1000)
        return now - int(float(m["n"]) * _UNIT_MS[m["unit"]])
    if value.isdigit() and len(value) >= 13:
        return int(value)
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"{text!r} is not a time: expected a duration ago (90s, 15m, 2h, 1d), ms since the "
            "epoch, or ISO 8601 such as 2026-12-02T06:40 (UTC unless a zone is given)"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return int(parsed.timestamp() * 1000)


CONSUMER_KEY_PREFIXES = (
    "security.", "sasl.", "ssl.", "ssl_", "enable.ssl.", "enable.sasl.", "socket.", "client.",
    "broker.", "reconnect.", "retry.backoff", "metadata.", "topic.metadata.", "api.version",
    "connections.", "debug", "log.", "log_", "resolve.", "client.dns.", "https.",
)
"""librdkafka properties of the settings' ``kafkaProducer.properties`` a consumer takes over:
security, connection and client keys; producer-only keys (acks, linger, compression...) are
left out."""

OWN_CONSUMER_KEYS = frozenset({"bootstrap.servers", "logger"})


def consumer_properties(
    producer_properties: Mapping[str, Any], overrides: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The consumer-side keys of ``producer_properties`` (:data:`CONSUMER_KEY_PREFIXES`), then
    ``overrides`` (``-X key=value``) on top, taken as given.

    Raises :class:`ReaderConfigError` naming an override the reader sets itself
    (``bootstrap.servers``: use the brokers option).
    """
    taken = {k: v for k, v in producer_properties.items()
             if k.startswith(CONSUMER_KEY_PREFIXES) and k not in OWN_CONSUMER_KEYS}
    for key, value in (overrides or {}).items():
        if key in OWN_CONSUMER_KEYS:
            raise ReaderConfigError(f"{key} cannot be set as a property: the reader sets it itself "
                             "(use --brokers for bootstrap.servers)")
        taken[key] = value
    return taken


@attrs.define
class ConsumeSummary:
    """How many messages were printed, and how many of them did not decode."""

    messages: int = 0
    undecodable: int = 0
    reason: str = ""
    skipped: int = 0
    """Messages read but left out by the filter."""

def consume_loop(
    consumer: KafkaConsumer,
    types: Mapping[str, type[Message]],
    assigned: Iterable[tuple[str, int]],
    *,
    emit: Callable[[Decoded], None],
    stop_at_end: bool,
    max_messages: int | None = None,
    idle_timeout_s: float | None = None,
    poll_s: float = 0.2,
    clock: Callable[[], float] = time.monotonic,
    keep: Filter | None = None,
) -> ConsumeSummary:
    """Poll ``consumer`` and hand each decoded message that ``keep`` matches to ``emit`` until a
    stop condition.

    Stops after ``max_messages`` emitted, after ``idle_timeout_s`` without a message, (with
    ``stop_at_end``) once every partition of ``assigned`` reported its end, or on Ctrl-C; the
    summary says which. With ``keep.until_ms`` a partition also ends at its first message past
    that time, and the loop stops once all have (at their end, too, when that time has
    passed). Undecodable messages are emitted too (their ``error`` set) unless the filter
    names environments or a run. Raises :class:`ReadError` on a fatal consumer error or a
    topic deleted while reading.
    """
    from confluent_kafka import KafkaError

    pending_end = set(assigned)
    past_until: set[tuple[str, int]] = set()
    until = keep.until_ms if keep is not None else None
    stop_at_end = stop_at_end or (until is not None and until <= time.time() * 1000)
    summary = ConsumeSummary()
    last = clock()
    try:
        while not _should_stop(summary, pending_end, last, stop_at_end, max_messages,
                               idle_timeout_s, clock):
            msg = consumer.poll(poll_s)
            if msg is None:
                continue
            place = (msg.topic() or "", msg.partition() or 0)
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    pending_end.discard(place)
                elif err.fatal() or err.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                    raise ReadError(f"Kafka: {place[0]}: {err.str()}")
                else:
                    logging.getLogger(__name__).warning("Kafka: %s", err.str())
                continue
            last = clock()
            if place in past_until:
                continue
            if stop_at_end:
                pending_end.add(place)  # more data arrived: wait for this partition's end again
            item = decode(msg, types[place[0]])
            if until is not None and item.timestamp_ms is not None and item.timestamp_ms > until:
                past_until.add(place)
                pending_end.discard(place)
                summary.skipped += 1
                continue
            if keep is not None and not keep.matches(item):
                summary.skipped += 1
                continue
            summary.messages += 1
            if not item.ok:
                summary.undecodable += 1
            emit(item)
    except KeyboardInterrupt:
        summary.reason = "interrupted"
    return summary

def _should_stop(
    summary: ConsumeSummary, pending_end: set[tuple[str, int]], last: float, stop_at_end: bool,
    max_messages: int | None, idle_timeout_s: float | None, clock: Callable[[], float],
) -> bool:
    if max_messages is not None and summary.messages >= max_messages:
        summary.reason = f"reached --max {max_messages}"
    elif stop_at_end and not pending_end:
        summary.reason = "reached the end of every partition"
    elif idle_timeout_s is not None and clock() - last >= idle_timeout_s:
        summary.reason = f"no message for {idle_timeout_s:g} s"
    return bool(summary.reason)

def make_consumer(brokers: str, properties: Mapping[str, Any] | None = None) -> Any:
    """A ``confluent_kafka.Consumer`` for manual assignment: private group, no commits, EOF
    events on, client logs routed to the CLI's (quiet unless -v) librdkafka logger; extra
    librdkafka ``properties`` (security...; :func:`consumer_properties`) on top.

    Raises :class:`ReaderConfigError` naming the property librdkafka refuses.
    """
    from confluent_kafka import Consumer, KafkaException

    config: dict[str, Any] = {
        "group.id": f"aliecs-consume-{uuid.uuid4().hex[:12]}",
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        **(properties or {}),
        "bootstrap.servers": brokers,
        "logger": logging.getLogger(CLIENT_LOGGER),
    }
    try:
        return Consumer(config)
    except KafkaException as exc:
        raise ReaderConfigError(f"Kafka consumer configuration: {exc.args[0].str()}") from exc

def assign(
    consumer: Any,
    topics: Sequence[str],
    *,
    brokers: str,
    start: Start | Mapping[tuple[str, int], int],
    timeout_s: float,
    since_ms: int | None = None,
) -> list[tuple[str, int]]:
    """Assign every partition of ``topics`` from the beginning, the end, explicit offsets, or
    (``since_ms``) the first message at or after that time (the end when there is none).

    Raises :class:`ReadError` (exit 1) when the brokers do not answer within ``timeout_s`` and
    :class:`UnknownTopic` (exit 2) naming a topic that does not exist.
    """
    from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, KafkaException, TopicPartition

    try:
        metadata = consumer.list_topics(timeout=timeout_s)
    except KafkaException as exc:
        raise ReadError(
            f"cannot reach Kafka at {brokers} within {timeout_s:g} s ({exc.args[0].str()})"
        ) from exc
    partitions: list[TopicPartition] = []
    for topic in topics:
        meta = metadata.topics.get(topic)
        if meta is None or meta.error is not None or not meta.partitions:
            known = sorted(t for t in metadata.topics if not t.startswith("__"))
            hint = f" (existing topics: {', '.join(known)})" if known else " (no topics exist)"
            raise UnknownTopic(f"topic '{topic}' does not exist on {brokers}{hint}")
        for number in sorted(meta.partitions):
            if isinstance(start, Mapping):
                offset = start.get((topic, number), OFFSET_BEGINNING)
            else:
                offset = OFFSET_BEGINNING if start == "beginning" else OFFSET_END
            partitions.append(TopicPartition(topic, number, offset))
    if since_ms is not None:
        wanted = [TopicPartition(tp.topic, tp.partition, since_ms) for tp in partitions]
        try:
            found = consumer.offsets_for_times(wanted, timeout=timeout_s)
        except KafkaException as exc:
            raise ReadError(f"cannot look up offsets by time on {brokers} within "
                            f"{timeout_s:g} s ({exc.args[0].str()})") from exc
        partitions = [TopicPartition(tp.topic, tp.partition,
                                     tp.offset if tp.offset >= 0 else OFFSET_END)
                      for tp in found]
    consumer.assign(partitions)
    return [(tp.topic, tp.partition) for tp in partitions]

def high_watermarks(brokers: str, topics: Sequence[str], *, timeout_s: float) -> dict[
        tuple[str, int], int]:
    """The next offset of every partition of the ``topics`` that exist (absent ones: none).

    Raises :class:`ReadError` when the brokers do not answer within ``timeout_s``.
    """
    from confluent_kafka import KafkaException, TopicPartition

    consumer = make_consumer(brokers)
    try:
        try:
            metadata = consumer.list_topics(timeout=timeout_s)
        except KafkaException as exc:
            raise ReadError(f"cannot reach Kafka at {brokers} within {timeout_s:g} s "
                           f"({exc.args[0].str()})") from exc
        offsets = {}
        for topic in topics:
            meta = metadata.topics.get(topic)
            if meta is None or meta.error is not None:
                continue
            for number in meta.partitions:
                _, high = consumer.get_watermark_offsets(TopicPartition(topic, number),
                                                         timeout=timeout_s)
                offsets[(topic, number)] = high
        return offsets
    finally:
        consumer.close()

def read_back(
    brokers: str, topics: Sequence[str], start: Mapping[tuple[str, int], int], *, root: str,
    timeout_s: float,
) -> list[Decoded]:
    """Every message of ``topics`` from the ``start`` offsets (partitions not in ``start``: from
    the beginning) to the current end, decoded. Raises as :func:`assign` does."""
    types = message_types(topics, root)
    consumer = make_consumer(brokers)
    found: list[Decoded] = []
    try:
        assigned = assign(consumer, topics, brokers=brokers, start=start, timeout_s=timeout_s)
        consume_loop(consumer, types, assigned, emit=found.append, stop_at_end=True,
                     idle_timeout_s=timeout_s)
    finally:
        consumer.close()
    return found
