"""Reading ``aliecs.*`` topics back and decoding each message with the type its topic carries.

The message type comes from the topic name
(:func:`~aliecs_integration.publish.topics.message_type_for_topic`): ``events.Event`` on core
topics, ``kafka.NewStateNotification`` or ``kafka.ActiveRunsList`` on legacy ones. Bytes that
do not decode give a :class:`Decoded` with the error, never an exception. Used by ``consume``,
the demo and the tests. Errors are :class:`~aliecs_integration.errors.ReadError` (exit 1 on the
command line) and :class:`~aliecs_integration.errors.UnknownTopic` (exit 2).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal, Protocol

import attrs
from google.protobuf import json_format, text_format
from google.protobuf.message import DecodeError, Message

from aliecs_integration.errors import ReadError, UnknownTopic

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

def decode(msg: KafkaMessage, message_type: type[Message]) -> Decoded:
    """Parse ``msg``'s value as ``message_type``; a parse failure is returned, never raised."""
    kind, ts = msg.timestamp()
    base = Decoded(
        topic=msg.topic() or "",
        partition=msg.partition() or 0,
        offset=msg.offset() or 0,
        key=msg.key(),
        value=msg.value(),
        timestamp_ms=ts if kind else None,
        type_name=message_type.DESCRIPTOR.full_name,
    )
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

@attrs.define
class ConsumeSummary:
    """How many messages were printed, and how many of them did not decode."""

    messages: int = 0
    undecodable: int = 0
    reason: str = ""

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
) -> ConsumeSummary:
    """Poll ``consumer`` and hand each decoded message to ``emit`` until a stop condition.

    Stops after ``max_messages``, after ``idle_timeout_s`` without a message, (with
    ``stop_at_end``) once every partition of ``assigned`` reported its end, or on Ctrl-C; the
    summary says which. Undecodable messages are emitted too (their ``error`` set). Raises
    :class:`ReadError` on a fatal consumer error or a topic deleted while reading.
    """
    from confluent_kafka import KafkaError

    pending_end = set(assigned)
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
            if stop_at_end:
                pending_end.add(place)  # more data arrived: wait for this partition's end again
            item = decode(msg, types[place[0]])
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

def make_consumer(brokers: str) -> Any:
    """A ``confluent_kafka.Consumer`` for manual assignment: private group, no commits, EOF
    events on, client logs routed to the CLI's (quiet unless -v) librdkafka logger."""
    from confluent_kafka import Consumer

    return Consumer({
        "bootstrap.servers": brokers,
        "group.id": f"aliecs-consume-{uuid.uuid4().hex[:12]}",
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "logger": logging.getLogger(CLIENT_LOGGER),
    })

def assign(
    consumer: Any,
    topics: Sequence[str],
    *,
    brokers: str,
    start: Start | Mapping[tuple[str, int], int],
    timeout_s: float,
) -> list[tuple[str, int]]:
    """Assign every partition of ``topics`` from the beginning, the end, or explicit offsets.

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
