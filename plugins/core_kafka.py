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
``timestamp_ns``: the moment the event describes. Producing is off (no publisher, nothing
connects) when ``enableKafka`` is false or ``kafkaEndpoints`` is empty.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, cast

import attrs

from aliecs_integration.errors import PublishError
from aliecs_integration.hookspecs import hookimpl
from aliecs_integration.pb import common_pb2, events_pb2
from aliecs_integration.plugin import Plugin
from aliecs_integration.publish.metrics import Metrics, MetricsSnapshot
from aliecs_integration.publish.publisher import Publisher, shared_publisher
from aliecs_integration.publish.topics import DEFAULT, TopicNames, key_for
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

log = logging.getLogger(__name__)


@attrs.frozen
class Encoded:
    """One message ready for the publisher."""

    topic: str
    key: bytes | None
    value: bytes


_Encoder = Callable[[Any, events_pb2.Event, TopicNames], tuple[str, str, bytes]]
"""Fills the envelope's payload in place; returns the topic, the key's id, and bytes to append
to the serialized envelope (``b""`` or the cached environment part, see ``_snapshot_part``)."""


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


_SNAPSHOT_CACHE: dict[int, tuple[EnvironmentSnapshot, bytes]] = {}
_SNAPSHOT_CACHE_SIZE = 1024


def _snapshot_part(env: EnvironmentSnapshot) -> bytes:
    """``Event{environmentEvent{<the snapshot's fields>}}`` serialized, cached per snapshot.

    The environment manager reuses one snapshot object until the environment changes, so
    consecutive events share it. Appending these bytes to the serialized envelope is exact
    protobuf: a parser merges the two occurrences of the ``environmentEvent`` message field
    (protobuf encoding spec, "last one wins" / embedded messages are merged); the fields of
    the two parts are disjoint. Saves re-encoding ``vars`` for every step event.
    """
    entry = _SNAPSHOT_CACHE.get(id(env))
    if entry is not None and entry[0] is env:
        return entry[1]
    event = events_pb2.Event()
    p = event.environmentEvent
    p.environmentId = env.id
    p.state = env.state
    p.runNumber = env.run_number or 0
    p.vars.update(env.variables)
    if env.last_request_user is not None:
        _set_user(p.lastRequestUser, env.last_request_user)
    if env.workflow is not None:
        w, info = env.workflow, p.workflowTemplateInfo
        info.name, info.description, info.path, info.public = (
            w.name,
            w.description,
            w.path,
            w.public,
        )
    data = event.SerializeToString()
    if len(_SNAPSHOT_CACHE) >= _SNAPSHOT_CACHE_SIZE:
        _SNAPSHOT_CACHE.clear()
    _SNAPSHOT_CACHE[id(env)] = (env, data)
    return data


def _environment(
    r: TransitionStepEvent, e: events_pb2.Event, t: TopicNames
) -> tuple[str, str, bytes]:
    p = e.environmentEvent
    p.error = r.error
    p.message = r.message
    p.transition = r.transition
    p.transitionStep = r.step
    p.transitionStatus = _status(r.status)
    return t.environment, r.environment.id, _snapshot_part(r.environment)


def _run(r: RunEvent, e: events_pb2.Event, t: TopicNames) -> tuple[str, str, bytes]:
    p = e.runEvent
    p.environmentId = r.environment_id
    p.runNumber = r.run_number
    p.state = r.state
    p.error = r.error
    p.transition = r.transition
    p.transitionStatus = _status(r.status)
    if r.last_request_user is not None:
        _set_user(p.lastRequestUser, r.last_request_user)
    return t.run, r.environment_id, b""


def _call(r: CallEvent, e: events_pb2.Event, t: TopicNames) -> tuple[str, str, bytes]:
    p = e.callEvent
    p.func = r.func
    p.callStatus = _status(r.status)
    setattr(p, "return", r.return_var)  # `return`: a Python keyword
    _set_traits(p.traits, r.traits)
    p.output = r.output
    p.error = r.error
    p.environmentId = r.environment_id
    p.path = r.role_path
    return t.call, r.environment_id, b""


def _service(
    r: IntegratedServiceEvent, e: events_pb2.Event, t: TopicNames
) -> tuple[str, str, bytes]:
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
    return topic, r.environment_id, b""


def _task(r: TaskEvent, e: events_pb2.Event, t: TopicNames) -> tuple[str, str, bytes]:
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
    return t.task, r.task_id, b""


def _role(r: RoleEvent, e: events_pb2.Event, t: TopicNames) -> tuple[str, str, bytes]:
    p = e.roleEvent
    p.name = r.name
    p.status = r.status
    p.state = r.state
    p.rolePath = r.role_path
    p.environmentId = r.environment_id
    return t.role, r.environment_id, b""


def _core(r: CoreEvent, e: events_pb2.Event, t: TopicNames) -> tuple[str, str, bytes]:
    if r.kind is CoreEventKind.CORE_START:
        e.coreStartEvent.frameworkId = r.framework_id
    elif r.kind is CoreEventKind.FRAMEWORK:
        e.frameworkEvent.frameworkId = r.framework_id
        e.frameworkEvent.message = r.message
    else:
        e.mesosHeartbeatEvent.SetInParent()
    return t.core, "", b""


def _host_start(r: HostStartEvent, e: events_pb2.Event, t: TopicNames) -> tuple[str, str, bytes]:
    e.coreStartEvent.SetInParent()
    return t.core, "", b""


_ENCODERS: Mapping[type, _Encoder] = {
    TransitionStepEvent: _environment,
    RunEvent: _run,
    CallEvent: _call,
    IntegratedServiceEvent: _service,
    TaskEvent: _task,
    RoleEvent: _role,
    CoreEvent: _core,
    HostStartEvent: _host_start,
}


def encode(record: object, topics: TopicNames = DEFAULT) -> Encoded:
    """The topic, key and serialized ``events.Event`` for one hook record.

    Raises ``PublishError`` naming the record's type when it is not a kind of event this
    plugin publishes, or naming a bad integrated-service name; nothing is then published.
    """
    encoder = _ENCODERS.get(type(record))
    if encoder is None:
        kinds = ", ".join(sorted(k.__name__ for k in _ENCODERS))
        raise PublishError(
            f"core-kafka: cannot publish a {type(record).__qualname__}: not an event kind "
            f"(expected one of {kinds})"
        )
    timestamp_ns: int = record.timestamp_ns  # type: ignore[attr-defined]
    event = events_pb2.Event(timestamp=timestamp_ns // 1_000_000, timestampNano=timestamp_ns)
    topic, key, suffix = encoder(record, event, topics)
    return Encoded(topic, key_for(key), event.SerializeToString() + suffix)


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
        self.publisher: Publisher | None = None
        self._stopped = False
        self._final: DeliveryReport | None = None
        self._idle_metrics = Metrics()
        if settings.producing:
            self.publisher = shared_publisher(
                settings.kafka_endpoints, settings.producer, name=context.name
            )
            t = self.topics
            self.publisher.prepare([t.core, t.environment, t.task, t.role, t.call, t.run])
        else:
            log.info(
                "%s: producing is off (enableKafka false or kafkaEndpoints empty): "
                "nothing is published",
                context.name,
            )

    def endpoint(self) -> str:
        """The bootstrap servers, comma-separated."""
        return ",".join(self.settings.kafka_endpoints)

    def connection_state(self) -> ConnectionState:
        """The publisher's state; IDLE when producing is off, SHUTDOWN after host stop."""
        if self._stopped:
            return ConnectionState.SHUTDOWN
        if self.publisher is None:
            return ConnectionState.IDLE
        return self.publisher.connection_state()

    def metrics(self) -> Metrics:
        """The publisher's metrics (all zero when producing is off)."""
        return self._idle_metrics if self.publisher is None else self.publisher.metrics

    def metrics_snapshot(self) -> MetricsSnapshot:
        """Per-topic counts of the publisher (all zero when producing is off)."""
        return self.metrics().snapshot()

    def flush(self, timeout_s: float) -> DeliveryReport | None:
        """Wait up to ``timeout_s`` for every event handed over to be acknowledged; None when
        producing is off. After host stop: the final report."""
        if self.publisher is None:
            return None
        if self._final is not None:
            return self._final
        return self.publisher.flush(timeout_s)

    def delivery_report(self) -> DeliveryReport | None:
        """The publisher's totals (final after host stop); None when producing is off."""
        if self.publisher is None:
            return None
        if self._final is not None:
            return self._final
        snap = self.publisher.metrics.snapshot()
        return DeliveryReport(snap.sent, snap.failed, snap.dropped, snap.queued)

    def publish(self, record: object) -> None:
        """Encode ``record`` and hand it to the publisher (nothing when producing is off)."""
        if self.publisher is None or self._stopped:
            return
        message = encode(record, self.topics)
        self.publisher.publish(message.topic, message.value, message.key)

    @hookimpl
    def on_host_start(self, event: HostStartEvent) -> None:
        """Publishes a coreStartEvent."""
        self.publish(event)

    @hookimpl
    def on_host_stop(self, event: HostStopEvent) -> None:
        """Flushes and closes the publisher within ``event.timeout_s``; logs the report."""
        if self.publisher is not None and not self._stopped:
            report = self._final = self.publisher.close(event.timeout_s)
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
        self.publish(event)

    @hookimpl
    def on_env_enter_state(self, event: StateChangeEvent) -> None:
        """Nothing: the ``enter_<STATE>`` step's environment events already carry the change."""

    @hookimpl
    def on_env_leave_state(self, event: StateChangeEvent) -> None:
        """Nothing: the ``leave_<STATE>`` step's environment events already carry it."""

    @hookimpl
    def on_call(self, event: CallEvent) -> None:
        self.publish(event)

    @hookimpl
    def on_integrated_service_event(self, event: IntegratedServiceEvent) -> None:
        self.publish(event)

    @hookimpl
    def on_run_sor_eor(self, event: RunEvent) -> None:
        self.publish(event)

    @hookimpl
    def on_task_event(self, event: TaskEvent) -> None:
        self.publish(event)

    @hookimpl
    def on_role_event(self, event: RoleEvent) -> None:
        self.publish(event)

    @hookimpl
    def on_core_event(self, event: CoreEvent) -> None:
        self.publish(event)
