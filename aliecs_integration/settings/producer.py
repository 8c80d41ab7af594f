"""``ProducerConfig``: the ``kafkaProducer`` settings key, validated.

The key is optional; every sub-key has a default::

    kafkaProducer:
      properties:                 # librdkafka properties, passed through verbatim
        security.protocol: SASL_SSL
        sasl.mechanism: PLAIN
        sasl.username: aliecs
        sasl.password: "..."      # secret: never logged, shown as ***
        compression.type: lz4
        linger.ms: 5
      topics:
        partitions: 1             # for the topics the publisher creates
        replicationFactor: 3      # clamped to the number of brokers, with a warning
      topicRoot: aliecs           # first component of every topic name
      queue:                      # the cap on undelivered messages (see publisher.py)
        maxMessages: 100000
        maxBytes: 67108864        # 64 MiB
        overflow: block           # block | drop_oldest | drop_newest
        blockTimeoutSeconds: 5.0
      flushTimeoutSeconds: 10
      spool:                      # optional: keep every message on disk until acknowledged
        path: /var/lib/aliecs/spool      # a directory; replayed at the next start after a crash

Producer defaults are ``acks=all``, ``enable.idempotence=true`` and ``message.timeout.ms=0``
(a message waits out a broker outage instead of failing). A user property overrides any of
them; a weaker ``acks`` or idempotence off is accepted with a logged warning.
"""

from __future__ import annotations

import enum
import logging
import re
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

import attrs

from aliecs_integration.errors import SettingsError
from aliecs_integration.settings.secrets import MASK, is_secret_key, masked_text

log = logging.getLogger(__name__)

KEY = "kafkaProducer"
PropertyValue = str | int | float | bool

#: Properties the publisher sets itself: refused in ``properties`` with the key to use instead.
RESERVED_PROPERTIES: Mapping[str, str] = MappingProxyType(
    {
        "bootstrap.servers": "set from kafkaEndpoints",
        "metadata.broker.list": "set from kafkaEndpoints",
        "queue.buffering.max.messages": f"set from {KEY}.queue.maxMessages",
        "queue.buffering.max.kbytes": f"set from {KEY}.queue.maxBytes",
        "delivery.report.only.error": "set by the publisher (it counts deliveries itself)",
        "statistics.interval.ms": "set by the publisher (it counts deliveries from statistics)",
    }
)

DEFAULT_PROPERTIES: Mapping[str, PropertyValue] = MappingProxyType(
    {"acks": "all", "enable.idempotence": True, "message.timeout.ms": 0}
)

STATISTICS_INTERVAL_MS = 500
"""How often librdkafka reports its statistics, from which the publisher counts deliveries
when idempotence is on (see :meth:`ProducerConfig.counts_from_statistics`)."""

MAX_PARTITIONS = 10_000
"""More partitions per topic than any broker is configured for; larger values are refused
(a broker refusing 100,000,000 partitions made topic creation retry forever)."""
MAX_REPLICATION = 100
MAX_QUEUE_MESSAGES = 100_000_000
"""librdkafka's own ceiling on ``queue.buffering.max.messages`` is 2,147,483,647; this is
the publisher's: twice the most librdkafka queues."""
MAX_QUEUE_BYTES = 2**40
MAX_SECONDS = 86_400.0
"""The longest timeout accepted (a day); ``.inf`` and ``.nan`` are refused."""

_TOPIC_ROOT = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")


class OverflowPolicy(enum.Enum):
    """What ``publish`` does when the queue cap is reached."""

    BLOCK = "block"
    DROP_OLDEST = "drop_oldest"
    DROP_NEWEST = "drop_newest"


def mask_properties(properties: Mapping[str, PropertyValue]) -> dict[str, PropertyValue]:
    """A copy of ``properties`` with every secret value replaced by ``***``."""
    return {
        k: MASK if is_secret_key(k) else masked_text(v) if isinstance(v, str) else v
        for k, v in properties.items()
    }


def _frozen(value: Mapping[str, PropertyValue]) -> Mapping[str, PropertyValue]:
    return value if isinstance(value, MappingProxyType) else MappingProxyType(dict(value))


def _repr_properties(value: Mapping[str, PropertyValue]) -> str:
    return repr(mask_properties(value))


@attrs.frozen
class QueueSplit:
    """How the cap on undelivered messages is split between librdkafka's own queue
    (``queue.buffering.max.messages`` / ``.kbytes``) and the publisher's queue (``own_bytes``;
    ``own_messages`` is its guaranteed share: it may also use what librdkafka's queue leaves
    of the whole, see :mod:`aliecs_integration.publish.held_messages`).

    Bytes: half each. Messages: under ``drop_oldest`` half each (the publisher's queue is
    where the oldest are dropped); under ``block`` and ``drop_newest`` librdkafka may hold the
    whole count (the publishing thread waits for room in it, or drops the new message) and
    the publisher's queue holds only messages waiting for their topic, within what
    librdkafka's queue leaves."""

    client_messages: int
    client_kbytes: int
    own_messages: int
    own_bytes: int

    @property
    def max_message_bytes(self) -> int:
        """The largest message that fits both queues."""
        return min(self.own_bytes, self.client_kbytes * 1024)


@attrs.frozen
class ProducerConfig:
    """Validated producer settings. Build with :meth:`from_dict`; ``repr`` masks secrets."""

    properties: Mapping[str, PropertyValue] = attrs.field(
        factory=dict, converter=_frozen, repr=_repr_properties
    )
    partitions: int = 1
    replication_factor: int = 3
    topic_root: str = "aliecs"
    max_messages: int = 100_000
    max_bytes: int = 64 * 1024 * 1024
    overflow: OverflowPolicy = OverflowPolicy.BLOCK
    block_timeout_s: float = 5.0
    flush_timeout_s: float = 10.0
    spool_path: str | None = None
    """``spool.path``: the directory of the on-disk journal of unacknowledged messages (off
    when None); see
    :mod:`aliecs_integration.publish.spool`."""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, *, source: str) -> ProducerConfig:
        """Validate the value of the ``kafkaProducer`` key (``None`` = every default).

        Raises ``SettingsError`` naming ``kafkaProducer.<sub-key>``, ``source`` and what was
        expected, for a wrong type, an out-of-range number, an unknown sub-key or a property
        the publisher sets itself (``bootstrap.servers``, librdkafka's queue limits).
        """
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise SettingsError(
                f"expected a mapping, got {_type_name(data)}", source=source, key=KEY
            )
        p = _Reader(data, source, KEY)
        p.only("properties", "topics", "topicRoot", "queue", "flushTimeoutSeconds", "spool")
        properties = _properties(data.get("properties"), source)
        topics = p.mapping("topics")
        t = _Reader(topics, source, f"{KEY}.topics")
        t.only("partitions", "replicationFactor")
        queue = p.mapping("queue")
        q = _Reader(queue, source, f"{KEY}.queue")
        q.only("maxMessages", "maxBytes", "overflow", "blockTimeoutSeconds")
        overflow_name = q.string("overflow", OverflowPolicy.BLOCK.value)
        try:
            overflow = OverflowPolicy(overflow_name)
        except ValueError:
            choices = ", ".join(repr(o.value) for o in OverflowPolicy)
            raise SettingsError(
                f"expected one of {choices}, got {overflow_name!r}",
                source=source,
                key=f"{KEY}.queue.overflow",
            ) from None
        spool = _Reader(p.mapping("spool"), source, f"{KEY}.spool")
        spool.only("path")
        spool_path = spool.data.get("path")
        if spool_path is not None and (not isinstance(spool_path, str) or not spool_path.strip()
                                       or "\x00" in spool_path):
            raise spool._error("path", f"expected a file path, got {_type_name(spool_path)}")
        root = p.string("topicRoot", "aliecs")
        if not _TOPIC_ROOT.match(root):
            raise SettingsError(
                f"expected dot-separated words of [A-Za-z0-9_-], got {root!r}",
                source=source,
                key=f"{KEY}.topicRoot",
            )
        config = cls(
            properties=properties,
            partitions=t.integer("partitions", 1, minimum=1, maximum=MAX_PARTITIONS),
            replication_factor=t.integer("replicationFactor", 3, minimum=1,
                                         maximum=MAX_REPLICATION),
            topic_root=root,
            max_messages=q.integer("maxMessages", 100_000, minimum=2,
                                   maximum=MAX_QUEUE_MESSAGES),
            max_bytes=q.integer("maxBytes", 64 * 1024 * 1024, minimum=4096,
                                maximum=MAX_QUEUE_BYTES),
            overflow=overflow,
            block_timeout_s=q.number("blockTimeoutSeconds", 5.0),
            flush_timeout_s=p.number("flushTimeoutSeconds", 10.0),
            spool_path=spool_path.strip() if spool_path else None,
        )
        _check_with_client(config, source)
        config.warn_weak_delivery(source)
        return config

    def producer_properties(self) -> dict[str, PropertyValue]:
        """The librdkafka properties: defaults overridden by the user's ``properties``."""
        return {**DEFAULT_PROPERTIES, **self.properties}

    def queue_split(self) -> QueueSplit:
        """The cap ``max_messages``/``max_bytes`` split between librdkafka and the publisher."""
        if self.overflow is OverflowPolicy.DROP_OLDEST:
            client_messages = max(1, self.max_messages // 2)
        else:
            client_messages = self.max_messages
        client_kbytes = max(1, self.max_bytes // 2048)
        return QueueSplit(
            client_messages,
            client_kbytes,
            self.max_messages - client_messages,
            self.max_bytes - client_kbytes * 1024,
        )

    def counts_from_statistics(self) -> bool:
        """True when idempotence is on and no spool is configured: librdkafka then reports
        only failed deliveries (``delivery.report.only.error``) and the acknowledged ones are
        counted from its statistics (each partition's last acknowledged message id), not one
        by one. The spool marks each message done from its own delivery report."""
        if self.spool_path:
            return False
        value = self.producer_properties().get("enable.idempotence", True)
        return str(value).lower() not in ("false", "0")

    def client_config(self, bootstrap_servers: Sequence[str]) -> dict[str, PropertyValue]:
        """The producer's librdkafka config: :meth:`producer_properties`, the bootstrap servers,
        librdkafka's share of the queue cap and, when :meth:`counts_from_statistics`,
        failures-only delivery reports and the statistics interval (callbacks are the
        publisher's to add)."""
        split = self.queue_split()
        config: dict[str, PropertyValue] = {
            **self.producer_properties(),
            "bootstrap.servers": ",".join(bootstrap_servers),
            "queue.buffering.max.messages": split.client_messages,
            "queue.buffering.max.kbytes": split.client_kbytes,
        }
        if self.counts_from_statistics():
            config["delivery.report.only.error"] = True
            config["statistics.interval.ms"] = STATISTICS_INTERVAL_MS
        return config

    def admin_config(self, bootstrap_servers: Sequence[str]) -> dict[str, PropertyValue]:
        """The AdminClient's config: the user's properties (security...) and the servers."""
        return {**self.properties, "bootstrap.servers": ",".join(bootstrap_servers)}

    def masked_properties(self) -> dict[str, PropertyValue]:
        """:meth:`producer_properties` with secrets replaced by ``***`` (safe to log)."""
        return mask_properties(self.producer_properties())

    def warn_weak_delivery(self, source: str = "") -> None:
        """Log a warning when the properties weaken delivery guarantees (acks, idempotence)."""
        props = self.producer_properties()
        acks = str(props.get("acks", "all")).lower()
        where = f"{source}: " if source else ""
        if acks not in ("all", "-1"):
            log.warning(
                "%s%s.properties: acks=%s: a broker failure may lose acknowledged events "
                "(default all)",
                where,
                KEY,
                acks,
            )
        if str(props.get("enable.idempotence", True)).lower() in ("false", "0"):
            log.warning(
                "%s%s.properties: enable.idempotence=false: retries after an outage may "
                "duplicate or reorder events (default true)",
                where,
                KEY,
            )


_QUIET = logging.getLogger(f"{__name__}.check")
_QUIET.setLevel(logging.CRITICAL + 1)
_QUIET.propagate = False
_PROPERTY = re.compile(r'property:? "([^"]+)"')


def _check_with_client(config: ProducerConfig, source: str) -> None:
    """Let the Kafka client itself judge the librdkafka properties (names and values) by
    building a producer that connects nowhere (no bootstrap servers); a refusal becomes
    ``SettingsError`` naming the property, so a typo such as ``lingerms`` is caught when the
    settings are validated, not when the publisher starts."""
    from confluent_kafka import KafkaException, Producer

    split = config.queue_split()
    try:
        Producer({**config.producer_properties(),
                  "queue.buffering.max.messages": split.client_messages,
                  "queue.buffering.max.kbytes": split.client_kbytes,
                  "logger": _QUIET})
    except KafkaException as exc:
        text = exc.args[0].str() if exc.args and hasattr(exc.args[0], "str") else str(exc)
        named = _PROPERTY.search(text)
        key = f"{KEY}.properties"
        if named and named[1] in config.properties:
            key = f"{key}.{named[1]}"
        raise SettingsError(
            f"the Kafka client refused the properties: {masked_text(text)}", source=source,
            key=key,
        ) from None


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, str):
        return f"string {value!r}"
    if isinstance(value, Mapping):
        return "mapping"
    if isinstance(value, list | tuple):
        return "list"
    return type(value).__name__


def _properties(value: Any, source: str) -> dict[str, PropertyValue]:
    key = f"{KEY}.properties"
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise SettingsError(
            f"expected a mapping of librdkafka property names to values, got {_type_name(value)}",
            source=source,
            key=key,
        )
    result: dict[str, PropertyValue] = {}
    for name, item in value.items():
        if not isinstance(name, str) or not name:
            raise SettingsError(
                f"expected non-empty property names, got {_type_name(name)}",
                source=source,
                key=key,
            )
        if name in RESERVED_PROPERTIES:
            raise SettingsError(
                f"not allowed here: {RESERVED_PROPERTIES[name]}",
                source=source,
                key=f"{key}.{name}",
            )
        if not isinstance(item, str | int | float | bool):
            shown = "a secret value" if is_secret_key(name) else _type_name(item)
            raise SettingsError(
                f"expected a string, number or boolean, got {shown}",
                source=source,
                key=f"{key}.{name}",
            )
        result[name] = item
    return result


class _Reader:
    """Typed access to one mapping of the settings, errors naming ``prefix.<sub-key>``."""

    def __init__(self, data: Mapping[str, Any], source: str, prefix: str) -> None:
        self.data, self.source, self.prefix = data, source, prefix

    def _error(self, sub: str, message: str) -> SettingsError:
        return SettingsError(message, source=self.source, key=f"{self.prefix}.{sub}")

    def only(self, *known: str) -> None:
        for sub in self.data:
            if sub not in known:
                raise self._error(str(sub), f"unknown key; expected one of {', '.join(known)}")

    def mapping(self, sub: str) -> Mapping[str, Any]:
        value = self.data.get(sub)
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise self._error(sub, f"expected a mapping, got {_type_name(value)}")
        return value

    def string(self, sub: str, default: str) -> str:
        value = self.data.get(sub, default)
        if not isinstance(value, str):
            raise self._error(sub, f"expected a string, got {_type_name(value)}")
        return value

    def integer(self, sub: str, default: int, *, minimum: int, maximum: int) -> int:
        value = self.data.get(sub, default)
        expected = f"expected an integer from {minimum} to {maximum}"
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._error(sub, f"{expected}, got {_type_name(value)}")
        if not minimum <= value <= maximum:
            raise self._error(sub, f"{expected}, got {value}")
        return value

    def number(self, sub: str, default: float) -> float:
        value = self.data.get(sub, default)
        expected = f"expected a number of seconds from 0 to {MAX_SECONDS:g}"
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self._error(sub, f"{expected}, got {_type_name(value)}")
        if not 0 <= value <= MAX_SECONDS:  # also refuses nan and inf
            raise self._error(sub, f"{expected}, got {value}")
        return float(value)
