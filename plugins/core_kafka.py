"""The built-in core-kafka plugin: every hook becomes an ``events.Event`` on an ``aliecs.*`` topic.

Mapping (``docs/events.md``, core topics; key = UTF-8 of the id, an empty id = no key):

=============================  =======================================  =====================
hook                           topic / payload                          key
=============================  =======================================  =====================
on_env_transition_step         ``environment`` / environmentEvent       environmentId
on_run_sor_eor                 ``run`` / runEvent                       environmentId
on_call                        ``call`` / callEvent                     environmentId
on_integrated_service_event    ``integrated_service.<service>``         environmentId
on_task_event                  ``task`` / taskEvent                     taskid
on_role_event                  ``role`` / roleEvent                     environmentId
on_core_event, on_host_start   ``core`` / coreStart, framework, heartbeat  none
=============================  =======================================  =====================

The envelope's ``timestamp`` (ms) and ``timestampNano`` (ns) are the record's
``timestamp_ns``: the moment the event describes. Every message is serialized once and
canonically (each field at most once; the bytes equal a parse and deterministic re-serialization
of themselves), as protobufjs consumers need. Environment ``vars`` are sent only on the event
that asks for them (``workflow loaded``). Producing is off (no publisher, nothing
connects) when ``enableKafka`` is false or ``kafkaEndpoints`` is empty. Every message carries
the headers of :mod:`aliecs_integration.publish.headers` (content type ``events.Event``, an event
id, the host's instance id); the event listeners get the same key and value, without headers.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any, cast

import attrs

from aliecs_integration.errors import PublishError
from aliecs_integration.hookspecs import hookimpl
from aliecs_integration.pb import common_pb2, events_pb2
from aliecs_integration.plugin import Plugin
from aliecs_integration.publish.headers import HeaderMaker
from aliecs_integration.publish.metrics import Metrics, MetricsSnapshot
from aliecs_integration.publish.publisher import Publisher, shared_publisher
from aliecs_integration.publish.switch import PublisherSwitch, SwitchablePublisher
from aliecs_integration.publish.topics import DEFAULT, TopicNames, key_for
from aliecs_integration.publish.wire import LOW_28, SMALL_VARINTS, varint
from aliecs_integration.records import (
    CallEvent,
    CallFunction,
    CallTraits,
    ConnectionState,
    CoreEvent,
    CoreEventKind,
    DeliveryReport,
    EnvironmentSnapshot,
    HostStartEvent,
    HostStopEvent,
    IntegratedServiceEvent,
    OpStatus,
    PluginContext,
    RoleEvent,
    RunEvent,
    StateChangeEvent,
    TaskEvent,
    TransitionStepEvent,
    User,
)
from aliecs_integration.settings.core import Settings

log = logging.getLogger(__name__)


def _snapshot_of(publisher: SwitchablePublisher) -> MetricsSnapshot | None:
    return publisher.metrics.snapshot() if isinstance(publisher, Publisher) else None


@attrs.frozen
class Encoded:
    """One message ready for the publisher."""

    topic: str
    key: bytes | None
    value: bytes


EventListener = Callable[[str, "bytes | None", bytes], None]
"""Receives (topic, key, serialized ``events.Event``) of each message core-kafka publishes."""

_Encoder = Callable[[Any, events_pb2.Event, TopicNames], tuple[str, str]]
"""Fills the envelope's payload in place; returns the topic and the key's id."""


def _status(status: OpStatus) -> events_pb2.OpStatus:
    return cast(events_pb2.OpStatus, int(status))  # same numbers on the wire


def _set_user(message: common_pb2.User, user: User) -> None:
    message.name = user.name
    if user.external_id is not None:
        message.externalId = user.external_id
    if user.id is not None:
        message.id = user.id


def _set_traits(message: events_pb2.Traits, traits: CallTraits) -> None:
    message.trigger = traits.trigger
    setattr(message, "await", traits.await_)  # `await`: a Python keyword
    message.timeout = traits.timeout
    message.critical = traits.critical


_ENVIRONMENT_TAG = b"\x5a"  # field 11 (environmentEvent), wire type 2 (length-delimited)


def _fill_shared(p: events_pb2.Ev_EnvironmentEvent, env: EnvironmentSnapshot) -> None:
    p.environmentId = env.id
    p.state = env.state
    p.runNumber = env.run_number or 0
    if env.last_request_user is not None:
        _set_user(p.lastRequestUser, env.last_request_user)
    if env.workflow is not None:
        w, info = env.workflow, p.workflowTemplateInfo
        info.name, info.description, info.path, info.public = (
            w.name, w.description, w.path, w.public)


_Shared = tuple[EnvironmentSnapshot, "bytes | None", bytes, bytes, int]
_SHARED_CACHE: dict[int, _Shared] = {}
_STEP_CACHE: dict[tuple[str, str, str, int], bytes] = {}
_CACHE_SIZE = 1024


def _shared_parts(env: EnvironmentSnapshot) -> _Shared:
    """What every event of this snapshot shares, built once: (the snapshot, the message key,
    fields 1-3 and fields 10-11 of ``Ev_EnvironmentEvent`` serialized, their total length).
    The manager reuses one snapshot object until the environment changes, so a transition's
    events share these bytes. Cached by the snapshot's identity (the entry holds the snapshot,
    so its id cannot be reused while the entry lives)."""
    entry = _SHARED_CACHE.get(id(env))
    if entry is not None and entry[0] is env:
        return entry
    head = events_pb2.Ev_EnvironmentEvent(
        environmentId=env.id, state=env.state, runNumber=env.run_number or 0
    ).SerializeToString()
    message = events_pb2.Ev_EnvironmentEvent()
    _fill_shared(message, env)
    message.ClearField("environmentId")
    message.ClearField("state")
    message.ClearField("runNumber")
    tail = message.SerializeToString()
    entry = (env, key_for(env.id), head, tail, len(head) + len(tail))
    if len(_SHARED_CACHE) >= _CACHE_SIZE:
        _SHARED_CACHE.clear()
    _SHARED_CACHE[id(env)] = entry
    return entry


def _step_part(r: TransitionStepEvent) -> bytes:
    """Fields 4-8 (error, message, transition, transitionStep, transitionStatus), serialized;
    cached when there is no error (a handful of distinct values per transition)."""
    if r.error:
        return events_pb2.Ev_EnvironmentEvent(
            error=r.error, message=r.message, transition=r.transition,
            transitionStep=r.step, transitionStatus=_status(r.status)).SerializeToString()
    key = (r.message, r.transition, r.step, r.status)
    part = _STEP_CACHE.get(key)
    if part is None:
        part = events_pb2.Ev_EnvironmentEvent(
            message=r.message, transition=r.transition, transitionStep=r.step,
            transitionStatus=_status(r.status)).SerializeToString()
        if len(_STEP_CACHE) >= _CACHE_SIZE:
            _STEP_CACHE.clear()
        _STEP_CACHE[key] = part
    return part


# Envelope fields 1 (timestamp, ms) and 2 (timestampNano) of every message, written without a
# protobuf message for 2**28 <= timestamp_ns < 2**63 (every moment since 1970-01-01T00:00:00.27):
# the ms field (with the tag of field 2) is kept for the current ms, the varint of
# timestamp_ns >> 28 for the current 2**28 ns, and the low 28 bits are four varint bytes.
_FAST_MIN_NS, _FAST_MAX_NS = 1 << 28, 1 << 63
_ms_field: tuple[int, bytes] = (-1, b"")
_high_groups: tuple[int, bytes] = (-1, b"")


def _envelope_head(timestamp_ns: int) -> bytes:
    """Fields 1 (timestamp, ms) and 2 (timestampNano) of ``events.Event``, serialized."""
    global _ms_field, _high_groups
    if not _FAST_MIN_NS <= timestamp_ns < _FAST_MAX_NS:
        return events_pb2.Event(timestamp=timestamp_ns // 1_000_000,
                                timestampNano=timestamp_ns).SerializeToString()
    ms = timestamp_ns // 1_000_000
    ms_field = _ms_field  # read once: another thread may replace it
    if ms_field[0] != ms:
        ms_field = _ms_field = (ms, b"\x08" + varint(ms) + b"\x10")
    high = timestamp_ns >> 28
    high_groups = _high_groups
    if high_groups[0] != high:
        high_groups = _high_groups = (high, varint(high))
    low = timestamp_ns & LOW_28  # as low_groups does, inline (once per message)
    return ms_field[1] + (
        (low & 0x7F) | (low & 0x3F80) << 1 | (low & 0x1FC000) << 2 | (low & 0xFE00000) << 3
        | 0x80808080).to_bytes(4, "little") + high_groups[1]


def _environment_with_vars(r: TransitionStepEvent) -> bytes:
    """The environment event that carries ``vars``, built whole (deterministic map order)."""
    event = events_pb2.Event(timestamp=r.timestamp_ns // 1_000_000, timestampNano=r.timestamp_ns)
    p = event.environmentEvent
    _fill_shared(p, r.environment)
    p.error, p.message, p.transition, p.transitionStep = (
        r.error, r.message, r.transition, r.step)
    p.transitionStatus = _status(r.status)
    p.vars.update(r.environment.variables)
    return event.SerializeToString(deterministic=True)


def _run(r: RunEvent, e: events_pb2.Event, t: TopicNames) -> tuple[str, str]:
    p = e.runEvent
    p.environmentId = r.environment_id
    p.runNumber = r.run_number
    p.state = r.state
    p.error = r.error
    p.transition = r.transition
    p.transitionStatus = _status(r.status)
    if r.last_request_user is not None:
        _set_user(p.lastRequestUser, r.last_request_user)
    return t.run, r.environment_id


def _call(r: CallEvent, e: events_pb2.Event, t: TopicNames) -> tuple[str, str]:
    p = e.callEvent
    p.func = r.func
    p.callStatus = _status(r.status)
    setattr(p, "return", r.return_var)  # `return`: a Python keyword
    _set_traits(p.traits, r.traits)
    p.output = r.output
    p.error = r.error
    p.environmentId = r.environment_id
    p.path = r.role_path
    return t.call, r.environment_id


def _service(
    r: IntegratedServiceEvent, e: events_pb2.Event, t: TopicNames
) -> tuple[str, str]:
    try:
        topic = t.integrated_service(r.service)
    except ValueError as exc:
        raise PublishError(f"integrated-service event not published: {exc}") from None
    p = e.integratedServiceEvent
    p.name = r.name
    p.error = r.error
    p.operationName = r.operation_name
    p.operationStatus = _status(r.operation_status)
    p.operationStep = r.operation_step
    p.operationStepStatus = _status(r.operation_step_status)
    p.environmentId = r.environment_id
    p.payload = r.payload
    return topic, r.environment_id


def _task(r: TaskEvent, e: events_pb2.Event, t: TopicNames) -> tuple[str, str]:
    p = e.taskEvent
    p.name = r.name
    p.taskid = r.task_id
    p.state = r.state
    p.status = r.status
    p.hostname = r.hostname
    p.className = r.class_name
    if r.traits is not None:
        _set_traits(p.traits, r.traits)
    p.environmentId = r.environment_id
    p.path = r.path
    return t.task, r.task_id


def _role(r: RoleEvent, e: events_pb2.Event, t: TopicNames) -> tuple[str, str]:
    p = e.roleEvent
    p.name = r.name
    p.status = r.status
    p.state = r.state
    p.rolePath = r.role_path
    p.environmentId = r.environment_id
    return t.role, r.environment_id


def _core(r: CoreEvent, e: events_pb2.Event, t: TopicNames) -> tuple[str, str]:
    if r.kind is CoreEventKind.CORE_START:
        e.coreStartEvent.frameworkId = r.framework_id
    elif r.kind is CoreEventKind.FRAMEWORK:
        e.frameworkEvent.frameworkId = r.framework_id
        e.frameworkEvent.message = r.message
    else:
        e.mesosHeartbeatEvent.SetInParent()
    return t.core, ""


def _host_start(r: HostStartEvent, e: events_pb2.Event, t: TopicNames) -> tuple[str, str]:
    e.coreStartEvent.SetInParent()
    e.coreStartEvent.frameworkId = r.framework_id
    return t.core, ""


_ENCODERS: Mapping[type, _Encoder] = {
    RunEvent: _run,
    CallEvent: _call,
    IntegratedServiceEvent: _service,
    TaskEvent: _task,
    RoleEvent: _role,
    CoreEvent: _core,
    HostStartEvent: _host_start,
}

Message = tuple[str, "bytes | None", bytes]
"""(topic, key, serialized ``events.Event``)."""
_Part = tuple["bytes | None", bytes]
_PAYLOAD_CACHE: dict[tuple[Any, ...], _Part] = {}


def _payload_part(record: Any, tag: bytes, field: str) -> _Part:
    """(key, the payload field of ``record`` serialized with its tag and length)."""
    event = events_pb2.Event()
    _, key_id = _ENCODERS[type(record)](record, event, DEFAULT)
    body = getattr(event, field).SerializeToString()
    return key_for(key_id), tag + varint(len(body)) + body


def _remember(key: tuple[Any, ...], part: _Part) -> _Part:
    if len(_PAYLOAD_CACHE) >= 4 * _CACHE_SIZE:
        _PAYLOAD_CACHE.clear()
    _PAYLOAD_CACHE[key] = part
    return part


class Encoding:
    """The encoders of one topic root, one per event kind, each returning (topic, key,
    serialized ``events.Event``) of one record, every message canonical.

    Environment events are assembled from parts serialized once (a protobuf message is the
    concatenation of its fields in field-number order, which is exactly how a serializer
    writes it): envelope fields 1-2, then field 11 holding the snapshot's shared fields 1-3,
    this event's fields 4-8 and the shared fields 10-11. Call, role and task events repeat (the
    same call, task or role at every cycle of an environment): their payload field is
    serialized once per distinct content and placed after the envelope's timestamps. Other
    kinds are built whole."""

    def __init__(self, topics: TopicNames) -> None:
        self.topics = topics
        self._environment, self._call = topics.environment, topics.call
        self._role, self._task = topics.role, topics.task
        self.by_type: Mapping[type, Callable[[Any], Message]] = {
            TransitionStepEvent: self.environment, CallEvent: self.call,
            RoleEvent: self.role, TaskEvent: self.task,
        }

    def environment(self, r: TransitionStepEvent) -> Message:
        env = r.environment
        if r.include_vars:
            return self._environment, key_for(env.id), _environment_with_vars(r)
        shared = _SHARED_CACHE.get(id(env))
        if shared is None or shared[0] is not env:
            shared = _shared_parts(env)
        step = None if r.error else _STEP_CACHE.get((r.message, r.transition, r.step, r.status))
        if step is None:
            step = _step_part(r)
        size = shared[4] + len(step)
        return self._environment, shared[1], b"".join((
            _envelope_head(r.timestamp_ns), _ENVIRONMENT_TAG,
            SMALL_VARINTS[size] if size < 128 else varint(size), shared[2], step, shared[3]))

    def call(self, r: CallEvent) -> Message:
        t = r.traits
        key = (CallEvent, r.environment_id, r.func, r.status, r.role_path, r.return_var,
               r.output, r.error, t.trigger, t.await_, t.timeout, t.critical)
        part = _PAYLOAD_CACHE.get(key) or _remember(key, _payload_part(r, b"\x72", "callEvent"))
        return self._call, part[0], _envelope_head(r.timestamp_ns) + part[1]

    def role(self, r: RoleEvent) -> Message:
        key = (RoleEvent, r.name, r.status, r.state, r.role_path, r.environment_id)
        part = _PAYLOAD_CACHE.get(key) or _remember(key, _payload_part(r, b"\x6a", "roleEvent"))
        return self._role, part[0], _envelope_head(r.timestamp_ns) + part[1]

    def task(self, r: TaskEvent) -> Message:
        t = r.traits
        key = (TaskEvent, r.name, r.task_id, r.state, r.status, r.environment_id, r.hostname,
               r.class_name, r.path,
               None if t is None else (t.trigger, t.await_, t.timeout, t.critical))
        part = _PAYLOAD_CACHE.get(key) or _remember(key, _payload_part(r, b"\x62", "taskEvent"))
        return self._task, part[0], _envelope_head(r.timestamp_ns) + part[1]

    def any(self, record: object) -> Message:
        """Any record; raises ``PublishError`` naming the record's type when it is not a kind
        of event published here, or naming a bad integrated-service name."""
        specific = self.by_type.get(type(record))
        if specific is not None:
            return specific(record)
        if isinstance(record, TransitionStepEvent):
            return self.environment(record)
        encoder = _ENCODERS.get(type(record))
        if encoder is None:
            kinds = ", ".join(sorted([*(k.__name__ for k in _ENCODERS), "TransitionStepEvent"]))
            raise PublishError(
                f"core-kafka: cannot publish a {type(record).__qualname__}: not an event kind "
                f"(expected one of {kinds})"
            )
        timestamp_ns: int = record.timestamp_ns  # type: ignore[attr-defined]
        event = events_pb2.Event(timestamp=timestamp_ns // 1_000_000, timestampNano=timestamp_ns)
        topic, key = encoder(record, event, self.topics)
        return topic, key_for(key), event.SerializeToString()


_ENCODINGS: dict[TopicNames, Encoding] = {}


def encode(record: object, topics: TopicNames = DEFAULT) -> Encoded:
    """The topic, key and serialized ``events.Event`` for one hook record.

    Raises ``PublishError`` naming the record's type when it is not a kind of event this
    plugin publishes, or naming a bad integrated-service name; nothing is then published.
    """
    encoding = _ENCODINGS.get(topics)
    if encoding is None:
        if len(_ENCODINGS) >= 64:
            _ENCODINGS.clear()
        encoding = _ENCODINGS[topics] = Encoding(topics)
    return Encoded(*encoding.any(record))


class CoreKafkaPlugin(Plugin):
    """Publishes every hook record on the core topics. Thread-safe (hooks come from the
    threads that drive environments); a hook raises ``PublishError`` when its event is refused
    (see :meth:`aliecs_integration.publish.publisher.Publisher.publish`)."""

    pretty_name = "Core Kafka producer"
    endpoint_setting = None

    def __init__(self, context: PluginContext) -> None:
        super().__init__(context)
        settings = context.settings
        self.topics = TopicNames(settings.producer.topic_root)
        self._encoding = Encoding(self.topics)
        self._stopped = False
        self._final: DeliveryReport | None = None
        self._idle_metrics = Metrics()
        self._listeners: tuple[EventListener, ...] = ()
        self._listeners_lock = threading.Lock()
        self._headers = HeaderMaker(events_pb2.Event, context.instance_id)
        self._switch = PublisherSwitch(self._new_publisher(settings), _snapshot_of)
        self._closed: Publisher | None = None  # the last publisher, after host stop

    def _new_publisher(self, settings: Settings) -> Publisher | None:
        if not settings.producing:
            log.info(
                "%s: producing is off (enableKafka false or kafkaEndpoints empty): "
                "nothing is published",
                self.name,
            )
            return None
        publisher = shared_publisher(settings.kafka_endpoints, settings.producer, name=self.name)
        t = TopicNames(settings.producer.topic_root)
        publisher.prepare([t.core, t.environment, t.task, t.role, t.call, t.run])
        return publisher

    @property
    def publisher(self) -> Publisher | None:
        """The current publisher; None when producing is off."""
        return cast("Publisher | None", self._switch.current)

    @publisher.setter
    def publisher(self, value: Publisher | None) -> None:
        self._switch = PublisherSwitch(value, _snapshot_of)

    def reconfigure(self, settings: Settings) -> None:
        """New settings while running: when ``enableKafka``, ``kafkaEndpoints`` or
        ``kafkaProducer`` changed, a new publisher (or none) replaces the current one (see
        :class:`~aliecs_integration.publish.switch.PublisherSwitch`: the old one is flushed
        within ``flushTimeoutSeconds`` and closed; nothing is lost or sent twice, order per
        environment holds). Other changes only update :attr:`settings`."""
        old = self.settings
        super().reconfigure(settings)
        if self._stopped or (old.producing, old.kafka_endpoints, old.producer) == (
                settings.producing, settings.kafka_endpoints, settings.producer):
            return
        new = self._new_publisher(settings)
        report = self._switch.replace(new, old.producer.flush_timeout_s)
        self.topics = TopicNames(settings.producer.topic_root)
        self._encoding = Encoding(self.topics)
        if report is not None:
            log.info("%s: previous producer closed: %d delivered, %d failed, %d dropped, "
                     "%d undelivered", self.name, report.delivered, report.failed,
                     report.dropped, report.undelivered)
        log.info("%s: now producing to %s", self.name,
                 ",".join(settings.kafka_endpoints) if new is not None else "nothing (off)")

    def endpoint(self) -> str:
        """The bootstrap servers, comma-separated."""
        return ",".join(self.settings.kafka_endpoints)

    def connection_state(self) -> ConnectionState:
        """The publisher's state; IDLE when producing is off, SHUTDOWN after host stop."""
        if self._stopped:
            return ConnectionState.SHUTDOWN
        publisher = self.publisher
        if publisher is None:
            return ConnectionState.IDLE
        return publisher.connection_state()

    def metrics(self) -> Metrics:
        """The current publisher's metrics (after host stop: the last one's; all zero when
        producing is off)."""
        publisher = self.publisher or self._closed
        return self._idle_metrics if publisher is None else publisher.metrics

    def metrics_snapshot(self) -> MetricsSnapshot:
        """Per-topic counts of every publisher this plugin used (all zero when producing was
        always off)."""
        return self._switch.metrics_snapshot(self.metrics().snapshot())

    def spool_stats(self) -> Mapping[str, int] | None:
        """The publisher's spool (``kafkaProducer.spool``): entries, bytes, replayed,
        trimmed; None when producing is off or the spool is not on."""
        publisher = self.publisher
        if publisher is None:
            return None
        stats = publisher.spool_stats()
        return None if stats is None else {k: int(v) for k, v in stats.items()}

    def flush(self, timeout_s: float) -> DeliveryReport | None:
        """Wait up to ``timeout_s`` for every event handed over to be acknowledged; None when
        producing is off. After host stop: the final report."""
        if self._final is not None:
            return self._final
        publisher = self.publisher
        if publisher is None:
            return self._switch.delivery_report(None)
        return self._switch.delivery_report(publisher.flush(timeout_s))

    def delivery_report(self) -> DeliveryReport | None:
        """The totals of every publisher used (final after host stop); None when producing
        was always off."""
        if self._final is not None:
            return self._final
        publisher = self.publisher
        if publisher is None:
            return self._switch.delivery_report(None)
        snap = publisher.metrics.snapshot()
        return self._switch.delivery_report(
            DeliveryReport(snap.sent, snap.failed, snap.dropped, snap.queued))

    def add_event_listener(self, listener: EventListener) -> Callable[[], None]:
        """Call ``listener(topic, key, value)`` with every message once the publisher accepted
        it (when producing is off: every message encoded), on the thread that fired the hook,
        in the order the messages were handed to the publisher. Returns a function removing the
        listener. A listener must be quick and must not raise (its errors are logged)."""
        with self._listeners_lock:
            self._listeners = (*self._listeners, listener)

        def remove() -> None:
            with self._listeners_lock:
                self._listeners = tuple(x for x in self._listeners if x is not listener)

        return remove

    def publish(self, record: object) -> None:
        """Encode ``record`` and hand it to the publisher (nothing when producing is off), then
        to the event listeners."""
        self._emit(self._encoding.any, record)

    def _emit(self, encoder: Callable[[Any], Message], record: Any) -> None:
        """``encoder(record)`` to the current publisher, then to the listeners (nothing is
        encoded when nobody takes the message)."""
        listeners = self._listeners
        if self._stopped or (self._switch.current is None and not listeners):
            return
        topic, key, value = encoder(record)
        self._switch.publish(topic, value, key, self._headers())
        for listener in listeners:
            try:
                listener(topic, key, value)
            except Exception:
                log.exception("%s: event listener %r failed", self.name, listener)

    @hookimpl
    def on_host_start(self, event: HostStartEvent) -> None:
        """Publishes a coreStartEvent (nothing when the host only lists plugins)."""
        if not event.listing:
            self.publish(event)

    @hookimpl
    def on_host_stop(self, event: HostStopEvent) -> None:
        """Flushes and closes the publisher within ``event.timeout_s``; logs the report."""
        if not self._stopped:
            self._closed = self.publisher
            last = self._switch.replace(None, event.timeout_s)
            if last is not None:
                report = self._final = self._switch.delivery_report(None)
                assert report is not None
                log.info(
                    "%s: stopped: %d delivered, %d failed, %d dropped, %d undelivered",
                    self.name,
                    report.delivered,
                    report.failed,
                    report.dropped,
                    report.undelivered,
                )
        self._stopped = True

    @hookimpl
    def register_call_functions(self) -> Mapping[str, CallFunction]:
        """core-kafka exports no call function."""
        return {}

    @hookimpl
    def on_env_transition_step(self, event: TransitionStepEvent) -> None:
        self._emit(self._encoding.environment, event)

    @hookimpl
    def on_env_enter_state(self, event: StateChangeEvent) -> None:
        """Nothing: the ``enter_<STATE>`` step's environment events already carry the change."""

    @hookimpl
    def on_env_leave_state(self, event: StateChangeEvent) -> None:
        """Nothing: the ``leave_<STATE>`` step's environment events already carry it."""

    @hookimpl
    def on_call(self, event: CallEvent) -> None:
        self._emit(self._encoding.call, event)

    @hookimpl
    def on_integrated_service_event(self, event: IntegratedServiceEvent) -> None:
        self.publish(event)

    @hookimpl
    def on_run_sor_eor(self, event: RunEvent) -> None:
        self.publish(event)

    @hookimpl
    def on_task_event(self, event: TaskEvent) -> None:
        self._emit(self._encoding.task, event)

    @hookimpl
    def on_role_event(self, event: RoleEvent) -> None:
        self._emit(self._encoding.role, event)

    @hookimpl
    def on_core_event(self, event: CoreEvent) -> None:
        self.publish(event)
