"""The frozen records that hooks receive.

Each hook takes exactly one keyword argument, ``event``, holding one of these records, so new
fields can be added without breaking existing plugins. Timestamps are nanoseconds since the
epoch (``time.time_ns()``) of the moment the record describes.
"""

from __future__ import annotations

import enum
import json
import time
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

import attrs

from aliecs_integration.settings.core import Settings


class OpStatus(enum.IntEnum):
    """Status of an operation; values equal ``events.OpStatus`` on the wire."""

    NULL = 0
    STARTED = 1
    ONGOING = 2
    DONE_OK = 3
    DONE_ERROR = 4
    DONE_TIMEOUT = 5


class ConnectionState(enum.Enum):
    """Connection state of a plugin, as the host lists it."""

    READY = "READY"
    CONNECTING = "CONNECTING"
    TRANSIENT_FAILURE = "TRANSIENT_FAILURE"
    IDLE = "IDLE"
    SHUTDOWN = "SHUTDOWN"
    UNKNOWN = "UNKNOWN"


def _frozen_mapping(value: Mapping[str, str]) -> Mapping[str, str]:
    if isinstance(value, MappingProxyType):
        return value
    return MappingProxyType(dict(value))


@attrs.frozen
class User:
    """The user who made the last request on an environment (``common.User``)."""

    name: str
    external_id: int | None = None
    id: int | None = None


@attrs.frozen
class WorkflowTemplate:
    """Where an environment's workflow came from (``common.WorkflowTemplateInfo``)."""

    name: str
    description: str = ""
    path: str = ""
    public: bool = False


@attrs.frozen
class EnvironmentSnapshot:
    """An environment as it was at one moment.

    ``variables`` are the consolidated variables (user > runtime defaults > built-in defaults),
    read-only. ``run_number`` is set only while a run is active.
    """

    id: str
    state: str
    detectors: tuple[str, ...] = ()
    run_type: str = ""
    run_number: int | None = None
    variables: Mapping[str, str] = attrs.field(factory=dict, converter=_frozen_mapping)
    last_request_user: User | None = None
    workflow: WorkflowTemplate | None = None


@attrs.frozen
class TransitionStepEvent:
    """One step of a transition starting (``status`` ONGOING, ``finished`` False) or finishing.

    A finished step has status ONGOING when it went well, DONE_ERROR with ``error`` otherwise.
    ``step`` is the trigger name without weight: ``before_X``, ``leave_S``, ``enter_S``,
    ``after_X``; for CREATE and DESTROY also ``CREATE``/``DESTROY`` and ``after_DESTROY``.
    ``environment.state`` is the FSM state at the time of the event (PENDING before creation).
    Events of the whole transition (``transition starting``, ``transition completed
    successfully``, ``transition error``) have an empty ``step``; outside step pairs
    ``finished`` is true for the DONE_* statuses; ``include_vars`` is true on
    the one event that carries the environment's variables (``workflow loaded``).
    """

    environment: EnvironmentSnapshot
    transition: str
    step: str
    status: OpStatus
    finished: bool
    message: str
    error: str = ""
    timestamp_ns: int = attrs.field(factory=time.time_ns)
    include_vars: bool = False


@attrs.frozen
class StateChangeEvent:
    """An environment entered (``on_env_enter_state``) or is about to leave a state.

    ``state`` is the state entered or left; ``environment`` is the snapshot at that moment.
    """

    environment: EnvironmentSnapshot
    state: str
    transition: str
    timestamp_ns: int = attrs.field(factory=time.time_ns)


@attrs.frozen
class RunEvent:
    """Start of Run / End of Run moments (``aliecs.run``).

    ``transition`` is START_ACTIVITY, STOP_ACTIVITY, GO_ERROR or TEARDOWN; ``status`` is STARTED
    at the before-moment, DONE_OK or DONE_ERROR (with ``error``) at the after-moment.
    ``timestamp_ns`` is the moment described (e.g. ``run_start_time_ms``), not when it was sent.
    """

    environment_id: str
    run_number: int
    state: str
    transition: str
    status: OpStatus
    error: str = ""
    last_request_user: User | None = None
    timestamp_ns: int = attrs.field(factory=time.time_ns)


@attrs.frozen
class CallTraits:
    """How a call is declared: trigger (with weight), await, timeout, criticality."""

    trigger: str
    await_: str = ""
    timeout: str = ""
    critical: bool = False


@attrs.frozen
class CallEvent:
    """A workflow call starting (STARTED) or done (DONE_OK, DONE_ERROR, DONE_TIMEOUT)."""

    environment_id: str
    func: str
    status: OpStatus
    traits: CallTraits
    role_path: str = ""
    return_var: str = ""
    output: str = ""
    error: str = ""
    timestamp_ns: int = attrs.field(factory=time.time_ns)


@attrs.frozen
class CallContext:
    """What a call function receives when a workflow call runs it.

    ``trigger`` is the step that fired it (without weight), ``args`` the text between the
    parentheses of the call (often empty), ``role_path`` the calling role's path. A call that
    talks to an integrated service reports its operation with :meth:`report_operation`.
    """

    environment: EnvironmentSnapshot
    func: str
    trigger: str
    args: str
    traits: CallTraits
    timestamp_ns: int = attrs.field(factory=time.time_ns)
    role_path: str = ""
    reporter: Callable[[IntegratedServiceEvent], object] | None = attrs.field(
        default=None, eq=False, repr=False)

    def report_operation(
        self, service: str, status: OpStatus, *, step: str, step_status: OpStatus,
        payload: Mapping[str, Any] | str = "", error: str = "", name: str = "",
        timestamp_ns: int | None = None,
    ) -> IntegratedServiceEvent:
        """Report one event of this call's integrated-service operation: ``name`` defaults to
        the calling role's path, ``operation_name`` is the call text, ``payload`` a mapping is
        sent as JSON with sorted keys. Returns the event (also when nobody listens)."""
        text = payload if isinstance(payload, str) else json.dumps(
            payload, sort_keys=True, separators=(",", ":"), default=str)
        event = IntegratedServiceEvent(
            service=service.strip().lower(), environment_id=self.environment.id,
            operation_name=self.func, operation_status=status, name=name or self.role_path,
            operation_step=step, operation_step_status=step_status, error=error, payload=text,
            timestamp_ns=time.time_ns() if timestamp_ns is None else timestamp_ns,
        )
        if self.reporter is not None:
            self.reporter(event)
        return event


CallFunction = Callable[[CallContext], "str | None"]
"""A function a plugin exports for workflow calls. Returns output text; raises to fail the call."""


@attrs.frozen
class IntegratedServiceEvent:
    """An operation of an integrated service (DCS, DDSched, ODC, TRG or a third party's).

    ``service`` is the lower-case service name; it selects ``aliecs.integrated_service.<service>``.
    """

    service: str
    environment_id: str
    operation_name: str
    operation_status: OpStatus
    name: str = ""
    operation_step: str = ""
    operation_step_status: OpStatus = OpStatus.NULL
    error: str = ""
    payload: str = ""
    timestamp_ns: int = attrs.field(factory=time.time_ns)


@attrs.frozen
class TaskEvent:
    """A task changed state or status (``aliecs.task``, keyed by ``task_id``)."""

    name: str
    task_id: str
    state: str
    status: str
    environment_id: str = ""
    hostname: str = ""
    class_name: str = ""
    path: str = ""
    traits: CallTraits | None = None
    timestamp_ns: int = attrs.field(factory=time.time_ns)


@attrs.frozen
class RoleEvent:
    """A role of an environment changed state or status (``aliecs.role``)."""

    name: str
    status: str
    state: str
    role_path: str
    environment_id: str
    timestamp_ns: int = attrs.field(factory=time.time_ns)


class CoreEventKind(enum.Enum):
    CORE_START = "coreStartEvent"
    FRAMEWORK = "frameworkEvent"
    MESOS_HEARTBEAT = "mesosHeartbeatEvent"


@attrs.frozen
class CoreEvent:
    """An event of the core itself, not of one environment (``aliecs.core``, no key)."""

    kind: CoreEventKind
    framework_id: str = ""
    message: str = ""
    timestamp_ns: int = attrs.field(factory=time.time_ns)


@attrs.frozen
class HostStartEvent:
    """The host has loaded its plugins and is about to serve environments.

    ``listing``: the host only lists the plugins (``aliecs-integration plugins``) and serves
    no environment: a plugin may connect (to report its state) but must publish nothing (a
    start event or an empty running list would mislead every consumer)."""

    plugin_names: tuple[str, ...]
    timestamp_ns: int = attrs.field(factory=time.time_ns)
    framework_id: str = ""
    """The id of this instance (a UUID, logged at start; ``coreStartEvent.frameworkId``)."""
    listing: bool = False


@attrs.frozen
class HostStopEvent:
    """The host is shutting down; plugins flush what they hold within ``timeout_s``."""

    timeout_s: float
    timestamp_ns: int = attrs.field(factory=time.time_ns)


@attrs.frozen
class PluginContext:
    """What a plugin factory receives when the host instantiates it: its registered ``name``,
    the validated :class:`~aliecs_integration.settings.core.Settings` (unknown keys are in
    ``settings.raw`` and ``settings.get(key)``) and ``instance_id``, the id of the host that
    loaded it (``PluginHost.instance_id``, the core start event's ``frameworkId``; ``""``
    outside a host), which the built-in plugins send as the ``source-instance-id`` header."""

    name: str
    settings: Settings
    instance_id: str = ""

@attrs.frozen
class DeliveryReport:
    """Totals since the publisher started: ``delivered`` (acknowledged), ``failed`` (reported
    failed by the client), ``dropped`` (overflow policy or refused); ``undelivered``: still
    held when the report was made (at close: abandoned)."""

    delivered: int
    failed: int
    dropped: int
    undelivered: int
