"""``KafkaPlugin``: the legacy, opt-in state notifications (``docs/events.md``, legacy topics).

Loaded by the host only when ``integrationPlugins`` names ``kafka`` and ``kafkaEndpoint`` is
set. It exports three call functions that the default workflow wires (``docs/lifecycle.md``):

- ``PublishEnterStateUpdate`` (``enter_<S>``, DESTROY): ``NewStateNotification`` on
  ``aliecs.env_state.<S>``, updates the running set, then ``ActiveRunsList`` on
  ``aliecs.env_list.RUNNING``;
- ``PublishLeaveStateUpdate`` (``leave_<S>``): ``NewStateNotification`` on
  ``aliecs.env_leave_state.<S>``;
- ``PublishStartActivityUpdate``: ``NewStateNotification`` on ``aliecs.before_start_activity``,
  ``aliecs.after_start_activity`` or ``aliecs.start_activity`` by trigger.

Each publishes only when the environment's ``kafka_enabled`` is true (and ``enableKafka`` is
on); otherwise it returns a "skipped: ..." output. A missing or malformed variable raises
:class:`~.env_info.EnvVariableError` before anything is sent (the call ends DONE_ERROR); a
refused message raises :class:`~aliecs_integration.errors.PublishError`. Messages have no key.
Producing goes through the shared
:class:`~aliecs_integration.publish.publisher.Publisher` (acks=all, idempotence, topics
pre-created), created at host start or on first use.

The three are :func:`~aliecs_integration.plugin.nonblocking`: the manager runs them on the
thread driving the environment, where they cannot be interrupted. They only build messages and
hand them to the publisher's bounded queue, which waits only when its cap is reached under the
``block`` overflow policy, for at most ``queue.blockTimeoutSeconds`` (default 5 s) per message.
So a call lasts at most ~2 x blockTimeoutSeconds (``PublishEnterStateUpdate`` sends two
messages), plus the wait for another environment's ``PublishEnterStateUpdate`` holding the
running set's lock. Keep 2 x blockTimeoutSeconds below the calls' timeout (the manager's default
is 30 s); a call that returns past its timeout is reported DONE_TIMEOUT, not interrupted.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Protocol, cast

from aliecs_integration.errors import PluginError
from aliecs_integration.hookspecs import hookimpl
from aliecs_integration.pb import kafka_pb2
from aliecs_integration.plugin import Plugin, nonblocking
from aliecs_integration.publish.headers import HeaderMaker, Headers
from aliecs_integration.publish.metrics import MetricsSnapshot, only_topics
from aliecs_integration.publish.publisher import Publisher, shared_publisher
from aliecs_integration.publish.switch import PublisherSwitch
from aliecs_integration.publish.topics import TopicNames
from aliecs_integration.publish.wire import varint
from aliecs_integration.records import (
    CallContext,
    CallFunction,
    ConnectionState,
    DeliveryReport,
    HostStartEvent,
    HostStopEvent,
    PluginContext,
)
from aliecs_integration.settings.core import Settings
from aliecs_integration.settings.producer import ProducerConfig

from .active_runs import ActiveRuns, timestamp_field
from .env_info import EnvVariableError, shared_env_info

log = logging.getLogger(__name__)

KAFKA_ENABLED = "kafka_enabled"
"""The environment variable that switches this plugin on for one environment."""
SKIPPED_DISABLED = f"skipped: {KAFKA_ENABLED} is not true"


def is_true(value: str | None) -> bool:
    """Whether a variable value means true: ``true`` in any case, surrounding spaces ignored."""
    return value is not None and value.strip().lower() == "true"
SKIPPED_NO_KAFKA = "skipped: enableKafka is false"


class LegacyPublisher(Protocol):
    """What the plugin needs of :class:`~aliecs_integration.publish.publisher.Publisher`."""

    def publish(self, topic: str, value: bytes, key: bytes | None = None,
                headers: Headers | None = None) -> None: ...

    def prepare(self, topics: Iterable[str]) -> None: ...

    def flush(self, timeout_s: float) -> DeliveryReport: ...

    def close(self, timeout_s: float | None = None) -> DeliveryReport: ...

    def connection_state(self) -> ConnectionState: ...


PublisherFactory = Callable[[Sequence[str], ProducerConfig], LegacyPublisher]


def _default_factory(servers: Sequence[str], config: ProducerConfig) -> LegacyPublisher:
    return shared_publisher(servers, config, name="kafka")


def now_ms() -> int:
    """The current time in ms since the epoch (the notification timestamps)."""
    return time.time_ns() // 1_000_000


class KafkaPlugin(Plugin):
    """The legacy ``kafka`` plugin. Thread-safe: environments call it concurrently.

    ``publisher_factory`` (tests) builds the publisher from ``(bootstrap servers, config)``;
    by default the process-wide :func:`~aliecs_integration.publish.publisher.shared_publisher`.
    Raises :class:`PluginError` when Kafka is enabled but ``kafkaEndpoint`` is not set.
    """

    pretty_name = "Kafka (legacy state notifications)"
    endpoint_setting = "kafkaEndpoint"
    variable_defaults = MappingProxyType({KAFKA_ENABLED: "false"})

    def __init__(
        self,
        context: PluginContext,
        *,
        publisher_factory: PublisherFactory = _default_factory,
        clock_ms: Callable[[], int] = now_ms,
    ) -> None:
        super().__init__(context)
        settings = context.settings
        self._enabled: bool = bool(settings.enable_kafka)
        self._bootstrap: str | None = settings.kafka_endpoint
        if self._enabled and not self._bootstrap:
            raise PluginError(f"plugin '{context.name}': setting 'kafkaEndpoint' is not set")
        self._config: ProducerConfig = settings.producer
        self.topics = TopicNames(self._config.topic_root)
        self._factory = publisher_factory
        self._clock = clock_ms
        self._switch = PublisherSwitch(None)
        self._publisher_lock = threading.Lock()
        self._stopped = False
        self.active_runs = ActiveRuns()
        self._sent_topics: set[str] = set()  # the topics of metrics_snapshot
        self._state_topics: dict[tuple[bool, str], str] = {}  # (leave, state) -> checked topic
        self._notification_headers = HeaderMaker(kafka_pb2.NewStateNotification,
                                                 context.instance_id)
        self._list_headers = HeaderMaker(kafka_pb2.ActiveRunsList, context.instance_id)

    # ------------------------------------------------------------------ host-facing
    def endpoint(self) -> str:
        return self._bootstrap or ""

    def connection_state(self) -> ConnectionState:
        if not self._enabled:
            return ConnectionState.IDLE
        publisher = self._switch.current
        if publisher is None:
            return ConnectionState.SHUTDOWN if self._stopped else ConnectionState.IDLE
        return publisher.connection_state()

    def metrics_snapshot(self) -> MetricsSnapshot | None:
        """Per-topic counts of the legacy topics while this plugin has a producer of its own
        (its ``kafkaEndpoint`` or producer settings differ from core-kafka's); None while it
        shares core-kafka's producer (core-kafka reports them) or has none. A new producer
        (live settings) starts from zero: Prometheus sees a counter reset."""
        publisher = self._switch.current
        if not isinstance(publisher, Publisher) or publisher.users > 1:
            return None
        return only_topics(publisher.metrics.snapshot(), self._sent_topics)

    def reconfigure(self, settings: Settings) -> None:
        """New settings while running: when ``enableKafka``, ``kafkaEndpoint`` or
        ``kafkaProducer`` changed, the next messages go to a new publisher (none when Kafka is
        now off); the old one is flushed and closed first (see
        :class:`~aliecs_integration.publish.switch.PublisherSwitch`). The running set is kept.
        Raises :class:`PluginError` (nothing changed) when Kafka is on without
        ``kafkaEndpoint``."""
        if settings.enable_kafka and not settings.kafka_endpoint:
            raise PluginError(f"plugin '{self.name}': setting 'kafkaEndpoint' is not set")
        old = (self._enabled, self._bootstrap, self._config)
        super().reconfigure(settings)
        if old == (settings.enable_kafka, settings.kafka_endpoint, settings.producer):
            return
        with self._publisher_lock:
            self._enabled = settings.enable_kafka
            self._bootstrap = settings.kafka_endpoint
            self._config = settings.producer
            self.topics = TopicNames(self._config.topic_root)
            self._state_topics = {}
            if self._stopped:
                return
            new = (self._factory((settings.kafka_endpoint,), self._config)
                   if settings.enable_kafka and settings.kafka_endpoint else None)
            report = self._switch.replace(new, old[2].flush_timeout_s)
        if new is not None:
            new.prepare(self.topics.legacy_topics())
        if report is not None:
            log.info("%s: previous producer closed: %d delivered, %d failed, %d dropped, "
                     "%d undelivered", self.name, report.delivered, report.failed,
                     report.dropped, report.undelivered)
        log.info("%s: now %s", self.name,
                 f"producing to {self._bootstrap}" if new is not None else "publishing nothing "
                 "(enableKafka is false)")

    @hookimpl
    def on_host_start(self, event: HostStartEvent) -> None:
        """Create the publisher, pre-create the legacy topics, publish the (empty) running list
        (only create the publisher when the host only lists plugins: it reports the
        connection, and an empty list would tell every dashboard that no run is active)."""
        if not self._enabled:
            log.info("%s: enableKafka is false: nothing will be published", self.name)
            return
        publisher = self._get_publisher()
        if event.listing:
            return
        publisher.prepare(self.topics.legacy_topics())
        with self.active_runs.lock:
            self._send(self.topics.env_list_running,
                       self.active_runs.listing(self._clock()).SerializeToString(),
                       self._list_headers)

    @hookimpl
    def on_host_stop(self, event: HostStopEvent) -> None:
        """Flush within ``event.timeout_s`` and release the publisher (shared: last user stops)."""
        with self._publisher_lock:
            self._stopped = True
            report = self._switch.replace(None, event.timeout_s)
        if report is None:
            return
        level = logging.WARNING if report.undelivered or report.failed else logging.INFO
        log.log(level, "%s: stopped: %d delivered, %d failed, %d dropped, %d undelivered",
                self.name, report.delivered, report.failed, report.dropped, report.undelivered)

    @hookimpl
    def register_call_functions(self) -> Mapping[str, CallFunction]:
        return {
            "PublishEnterStateUpdate": self.publish_enter_state_update,
            "PublishLeaveStateUpdate": self.publish_leave_state_update,
            "PublishStartActivityUpdate": self.publish_start_activity_update,
        }

    # ------------------------------------------------------------------ call functions
    @nonblocking
    def publish_enter_state_update(self, call: CallContext) -> str:
        """``env_state.<S>``, then the running set updated and ``env_list.RUNNING``."""
        skipped = self._skip_reason(call)
        if skipped:
            return skipped
        info = self._env_info(call)
        topic = self._state_topic(call, False, info.state)
        list_topic = self.topics.env_list_running
        # One lock for update + both sends: every list published matches the set at that
        # moment, and lists reach the topic in the order the set changed.
        with self.active_runs.lock:
            self.active_runs.entered(info)
            self._send(topic, _notification(info, self._clock()), self._notification_headers)
            listing, count = self.active_runs.encoded_listing(self._clock())
            self._send(list_topic, listing, self._list_headers)
        return f"published {topic}; {list_topic} with {count} run(s)"

    @nonblocking
    def publish_leave_state_update(self, call: CallContext) -> str:
        """``env_leave_state.<S>`` (the EOR message, for S = RUNNING)."""
        skipped = self._skip_reason(call)
        if skipped:
            return skipped
        info = self._env_info(call)
        topic = self._state_topic(call, True, info.state)
        self._send(topic, _notification(info, self._clock()), self._notification_headers)
        return f"published {topic}"

    @nonblocking
    def publish_start_activity_update(self, call: CallContext) -> str:
        """``before_start_activity`` / ``after_start_activity`` by trigger, else
        ``start_activity``."""
        skipped = self._skip_reason(call)
        if skipped:
            return skipped
        info = self._env_info(call)
        if call.trigger == "before_START_ACTIVITY":
            topic = self.topics.before_start_activity
        elif call.trigger == "after_START_ACTIVITY":
            topic = self.topics.after_start_activity
        else:
            topic = self.topics.start_activity
        self._send(topic, _notification(info, self._clock()), self._notification_headers)
        return f"published {topic}"

    # ------------------------------------------------------------------ helpers
    def _skip_reason(self, call: CallContext) -> str:
        if not is_true(call.environment.variables.get(KAFKA_ENABLED)):
            return SKIPPED_DISABLED
        if not self._enabled:
            return SKIPPED_NO_KAFKA
        return ""

    def _env_info(self, call: CallContext) -> kafka_pb2.EnvInfo:
        """The cached, shared message: read it or copy it, never change it."""
        try:
            return shared_env_info(call.environment.variables, call.trigger, call.environment.id)
        except EnvVariableError as exc:
            log.error("%s: %s at %s for environment %s: nothing published: %s", self.name,
                      call.func, call.trigger, exc.environment_id, exc)
            raise

    def _state_topic(self, call: CallContext, leave: bool, state: str) -> str:
        """``env_leave_state.<state>`` or ``env_state.<state>``; raises ``ValueError`` naming
        the environment and trigger when ``state`` gives no topic (valid ones are cached)."""
        topic = self._state_topics.get((leave, state))
        if topic is not None:
            return topic
        try:
            topic = (self.topics.env_leave_state if leave else self.topics.env_state)(state)
        except ValueError as exc:
            log.error("%s: %s at %s for environment %s: nothing published: %s", self.name,
                      call.func, call.trigger, call.environment.id, exc)
            raise ValueError(
                f"environment {call.environment.id}: trigger {call.trigger!r} gives no legacy "
                f"topic: {exc}"
            ) from exc
        self._state_topics[(leave, state)] = topic
        return topic

    def _get_publisher(self) -> LegacyPublisher:
        publisher = self._switch.current  # replaced only by reconfigure and on_host_stop
        if publisher is not None:
            return cast(LegacyPublisher, publisher)
        with self._publisher_lock:
            if self._stopped:
                raise PluginError(f"plugin '{self.name}' is stopped: nothing can be published")
            if not self._enabled:
                raise PluginError(f"plugin '{self.name}': enableKafka is false: nothing can be "
                                  "published")
            current = self._switch.current
            if current is None:
                assert self._bootstrap is not None  # checked in __init__ when enabled
                current = self._factory((self._bootstrap,), self._config)
                self._switch.replace(current, 0.0)
            return cast(LegacyPublisher, current)

    def _send(self, topic: str, value: bytes, headers: HeaderMaker) -> None:
        self._get_publisher()
        self._sent_topics.add(topic)
        if not self._switch.publish(topic, value, None, headers()):
            raise PluginError(f"plugin '{self.name}': {topic}: not published: Kafka was "
                              "switched off meanwhile (enableKafka false)")


_INFO_FIELDS: dict[int, tuple[kafka_pb2.EnvInfo, bytes]] = {}
_CACHE_SIZE = 1024


def _notification(info: kafka_pb2.EnvInfo, timestamp_ms: int) -> bytes:
    """``NewStateNotification(envInfo=info, timestamp=timestamp_ms)`` serialized canonically:
    field 1 (the ``EnvInfo``, serialized once per cached message: ``info`` is shared and never
    changed) then field 2."""
    entry = _INFO_FIELDS.get(id(info))
    if entry is None or entry[0] is not info:
        body = info.SerializeToString()
        entry = (info, b"\x0a" + varint(len(body)) + body)
        if len(_INFO_FIELDS) >= _CACHE_SIZE:
            _INFO_FIELDS.clear()
        _INFO_FIELDS[id(info)] = entry  # holds ``info``: its id is not reused meanwhile
    return entry[1] + timestamp_field(timestamp_ms)
