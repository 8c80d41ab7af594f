"""The ``o2control.Control`` RPCs on top of the environment manager.

Behaviour (what the reference's clients rely on):

- ``NewEnvironment``: CREATE, DEPLOY, CONFIGURE in one request; replies when CONFIGURED or with
  an error after tearing the environment down. ``autoTransition`` then starts a run in the
  background. ``NewEnvironmentAsync`` replies after CREATE with the new id; DEPLOY and CONFIGURE
  follow in the background and end with the environment event ``created new environment`` or
  ``cannot create new environment``. The request's variables ``detectors`` (a JSON list or
  comma-separated names) and ``run_type`` set the environment's detectors and run type.
- ``ControlEnvironment``: one transition; reply with the new state, run number and timing.
- ``DestroyEnvironment``: refused for RUNNING unless ``allowInRunningState`` (STOP_ACTIVITY
  first) or ``force``; a CONFIGURED environment is RESET first.
- One operation at a time per environment: a request for an environment that is busy gets
  ABORTED at once, naming the operation in progress. Different environments run in parallel.
- Status codes: NOT_FOUND unknown environment; FAILED_PRECONDITION transition not allowed,
  detector in use, RUNNING environment not destroyable; INVALID_ARGUMENT malformed request
  (unknown template, bad variables, NOOP); ABORTED busy, or a transition cancelled by a
  critical call; UNAVAILABLE while shutting down. Every reply's ``timestamp`` is set.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, NoReturn, TypeVar

import attrs
import grpc

from aliecs_integration import __version__
from aliecs_integration.engine import fsm
from aliecs_integration.engine.manager import EnvironmentManager
from aliecs_integration.engine.roles import RoleView
from aliecs_integration.engine.tasks import Task
from aliecs_integration.errors import (
    DetectorInUse,
    EnvironmentNotFound,
    TransitionError,
    TransitionNotAllowed,
)
from aliecs_integration.host import PluginHost
from aliecs_integration.pb import common_pb2, o2control_pb2
from aliecs_integration.records import EnvironmentSnapshot, OpStatus, User
from aliecs_integration.service.fanout import EventFanout, SubscriptionEnded
from aliecs_integration.service.templates import TemplateCatalog, UnknownTemplate

log = logging.getLogger(__name__)

Optype = o2control_pb2.ControlEnvironmentRequest
OPTYPES: Mapping[int, str] = {
    Optype.START_ACTIVITY: fsm.START_ACTIVITY, Optype.STOP_ACTIVITY: fsm.STOP_ACTIVITY,
    Optype.CONFIGURE: "CONFIGURE", Optype.RESET: "RESET", Optype.GO_ERROR: fsm.GO_ERROR,
    Optype.DEPLOY: "DEPLOY", Optype.EXIT: "EXIT", Optype.RECOVER: "RECOVER",
}
"""ControlEnvironment's ``type`` -> transition name (NOOP is refused)."""

ALICE_DETECTORS = ("CPV", "EMC", "FDD", "FT0", "FV0", "HMP", "ITS", "MCH", "MFT", "MID", "PHS",
                   "TOF", "TPC", "TRD", "TST", "ZDC")
"""The detectors an instance knows by default (``serve --detectors`` replaces them)."""

CREATED = "created new environment"
CANNOT_CREATE = "cannot create new environment"

_T = TypeVar("_T")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Busy(Exception):
    """The environment is in the middle of another operation."""


class ShuttingDown(Exception):
    """The server no longer accepts operations."""


class RequestError(Exception):
    """A request refused with a given status code."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


@attrs.define
class _Record:
    """What the service knows of an environment beyond the manager's snapshot."""

    created_ms: int
    template: str
    description: str
    defaults: Mapping[str, str]
    user_vars: Mapping[str, str]
    public: bool


def _user(message: common_pb2.User, present: bool) -> User | None:
    if not present or not message.name:
        return None
    return User(message.name,
                message.externalId if message.HasField("externalId") else None,
                message.id if message.HasField("id") else None)


def split_variables(variables: Mapping[str, str]) -> tuple[list[str], str, dict[str, str]]:
    """(detectors, run type, the other variables) of a request's ``vars``. ``detectors`` is a
    JSON list of names or comma-separated names. Raises ``ValueError`` naming a malformed
    value."""
    rest = dict(variables)
    raw = rest.pop("detectors", "").strip()
    detectors: list[str] = []
    if raw.startswith("["):
        try:
            parsed = json.loads(raw)
        except ValueError as exc:
            raise ValueError(f"variable 'detectors': malformed JSON list {raw!r}: {exc}") from None
        if not isinstance(parsed, list) or not all(isinstance(d, str) for d in parsed):
            raise ValueError(f"variable 'detectors': expected a list of names, got {raw!r}")
        detectors = [d.strip() for d in parsed]
    elif raw:
        detectors = [d.strip() for d in raw.split(",")]
    if any(not d for d in detectors):
        raise ValueError(f"variable 'detectors': empty detector name in {raw!r}")
    return detectors, rest.pop("run_type", ""), rest


class ControlServicer:
    """Implements every RPC of ``protos/o2control.proto`` (``serve`` registers it)."""

    def __init__(
        self, manager: EnvironmentManager, host: PluginHost, fanout: EventFanout,
        templates: TemplateCatalog, *, framework_id: str, instance_name: str = "",
        configuration_endpoint: str = "", detectors: tuple[str, ...] = ALICE_DETECTORS,
        background_workers: int = 8, max_subscribers: int = 24,
    ) -> None:
        self._manager = manager
        self._host = host
        self._fanout = fanout
        self._templates = templates
        self.framework_id = framework_id
        self._instance = instance_name or f"aliecs-integration@{socket.gethostname()}"
        self._config_endpoint = configuration_endpoint
        self._detectors = tuple(detectors)
        self._records: dict[str, _Record] = {}
        self._busy: dict[str, tuple[str, float]] = {}
        self._lock = threading.Condition()
        self._accepting = True
        self._background = ThreadPoolExecutor(background_workers,
                                              thread_name_prefix="env-background")
        self._pending: set[Future[None]] = set()
        self._creating = 0  # CREATEs in progress (their environment id is not known yet)
        self._max_subscribers = max_subscribers

    # ------------------------------------------------------------------ lifecycle

    def stop_accepting(self) -> None:
        """From now on every operation request is refused with UNAVAILABLE."""
        with self._lock:
            self._accepting = False
            self._lock.notify_all()

    def wait_idle(self, timeout_s: float) -> list[str]:
        """Wait up to ``timeout_s`` for the operations in progress (including background ones)
        to end; returns ``"<env id>: <operation>"`` of those still running."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while (self._busy or self._pending or self._creating) and (
                    time.monotonic() < deadline):
                self._lock.wait(min(0.2, max(0.0, deadline - time.monotonic())))
            left = [f"{env}: {op}" for env, (op, _) in sorted(self._busy.items())]
            left += ["(new environment): CREATE"] * self._creating
        self._background.shutdown(wait=not left, cancel_futures=True)
        return left

    def busy_operations(self) -> dict[str, str]:
        with self._lock:
            return {env: op for env, (op, _) in self._busy.items()}

    @contextmanager
    def _operation(self, env_id: str, operation: str) -> Iterator[None]:
        """Hold the environment for ``operation``; raises Busy or ShuttingDown at once."""
        with self._lock:
            self._check_accepting()
            current = self._busy.get(env_id)
            if current is not None:
                op, since = current
                raise Busy(f"environment {env_id} is busy: {op} in progress for "
                           f"{time.monotonic() - since:.1f} s; try again when it completes")
            self._busy[env_id] = (operation, time.monotonic())
        try:
            yield
        finally:
            self._release(env_id)

    def _release(self, env_id: str) -> None:
        with self._lock:
            self._busy.pop(env_id, None)
            self._lock.notify_all()

    def _check_accepting(self) -> None:
        if not self._accepting:
            raise ShuttingDown("the server is shutting down and accepts no new operations")

    def _submit(self, env_id: str, operation: str, work: Callable[[], None]) -> None:
        """Run ``work`` in the background with ``env_id`` already marked busy (released when
        it ends)."""
        def run() -> None:
            try:
                work()
            except Exception:
                log.exception("environment %s: background %s failed", env_id, operation)
            finally:
                self._release(env_id)

        with self._lock:
            try:
                future = self._background.submit(run)
            except RuntimeError:  # shut down meanwhile
                log.warning("environment %s: %s not started: the server is shutting down",
                            env_id, operation)
                self._busy.pop(env_id, None)
                self._lock.notify_all()
                return
            self._busy[env_id] = (operation, time.monotonic())
            self._pending.add(future)
        future.add_done_callback(self._done)

    def _done(self, future: Future[None]) -> None:
        with self._lock:
            self._pending.discard(future)
            self._lock.notify_all()

    # ------------------------------------------------------------------ helpers

    def _info(self, snap: EnvironmentSnapshot, *, with_tasks: bool = False,
              ) -> o2control_pb2.EnvironmentInfo:
        record = self._records.get(snap.id)
        busy = self._busy.get(snap.id)
        try:
            tasks = self._manager.tasks(snap.id)
        except EnvironmentNotFound:
            tasks = []
        active = sum(t.status == "ACTIVE" for t in tasks)
        info = o2control_pb2.EnvironmentInfo(
            id=snap.id, state=snap.state, currentRunNumber=snap.run_number or 0,
            includedDetectors=list(snap.detectors), vars=dict(snap.variables),
            currentTransition=busy[0] if busy else "", numberOfTasks=len(tasks),
            numberOfActiveTasks=active, numberOfInactiveTasks=len(tasks) - active,
            numberOfHosts=len({t.hostname for t in tasks}),
            tasks=[_short_task(t) for t in tasks] if with_tasks else [],
        )
        if snap.workflow is not None:
            info.rootRole = snap.workflow.name
            info.description = snap.workflow.description
        if record is not None:
            info.createdWhen = record.created_ms
            info.defaults.update(record.defaults)
            info.userVars.update(record.user_vars)
        return info

    def _role(self, snap: EnvironmentSnapshot) -> o2control_pb2.RoleInfo:
        """The role tree; the root role carries the environment's variables."""
        record = self._records.get(snap.id)
        role = _role_info(self._manager.roles(snap.id))
        role.vars.update(snap.variables)
        role.consolidatedStack.update(snap.variables)
        if record is not None:
            role.defaults.update(record.defaults)
            role.userVars.update(record.user_vars)
            role.description = record.description
        return role

    def _get(self, env_id: str) -> EnvironmentSnapshot:
        if not env_id:
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, "no environment id given")
        return self._manager.get(env_id)

    # ------------------------------------------------------------------ framework

    def GetFrameworkInfo(self, request: Any, context: grpc.ServicerContext) -> Any:
        def reply() -> Any:
            active = self._manager.active_detectors()
            known = sorted(set(self._detectors) | set(active))
            major, minor, patch = [*map(int, __version__.split(".")[:3]), 0, 0, 0][:3]
            return o2control_pb2.GetFrameworkInfoReply(
                frameworkId=self.framework_id,
                environmentsCount=len(self._manager.list()),
                state="RUNNING" if self._accepting else "SHUTTING_DOWN",
                instanceName=self._instance,
                version=o2control_pb2.Version(major=major, minor=minor, patch=patch,
                                              productName="aliecs-integration",
                                              versionStr=__version__),
                configurationEndpoint=self._config_endpoint,
                detectorsInInstance=known, activeDetectors=sorted(active),
                availableDetectors=[d for d in known if d not in active],
                timestamp=now_ms())
        return _answer(context, reply)

    def GetIntegratedServices(self, request: Any, context: grpc.ServicerContext) -> Any:
        def reply() -> Any:
            result = o2control_pb2.ListIntegratedServicesReply(timestamp=now_ms())
            for p in self._host.list_plugins():
                data = {"origin": p.origin} if p.loaded else {"reason": p.reason}
                result.services[p.name].CopyFrom(o2control_pb2.IntegratedServiceInfo(
                    name=p.pretty_name, enabled=p.loaded, endpoint=p.endpoint,
                    connectionState=p.state if p.loaded else "",
                    data=json.dumps(data, sort_keys=True)))
            return result
        return _answer(context, reply)

    def GetActiveDetectors(self, request: Any, context: grpc.ServicerContext) -> Any:
        return _answer(context, lambda: o2control_pb2.GetActiveDetectorsReply(
            detectors=sorted(self._manager.active_detectors()), timestamp=now_ms()))

    def GetAvailableDetectors(self, request: Any, context: grpc.ServicerContext) -> Any:
        def reply() -> Any:
            active = self._manager.active_detectors()
            return o2control_pb2.GetAvailableDetectorsReply(
                detectors=[d for d in sorted(self._detectors) if d not in active],
                timestamp=now_ms())
        return _answer(context, reply)

    def GetWorkflowTemplates(self, request: Any, context: grpc.ServicerContext) -> Any:
        def reply() -> Any:
            result = o2control_pb2.GetWorkflowTemplatesReply(timestamp=now_ms())
            for t in self._templates.templates():
                if request.repoPattern and not fnmatch.fnmatch(t.repo, request.repoPattern):
                    continue
                result.workflowTemplates.add(repo=t.repo, template=t.name,
                                             description=t.workflow.description)
            return result
        return _answer(context, reply)

    def GetTasks(self, request: Any, context: grpc.ServicerContext) -> Any:
        return _answer(context, lambda: o2control_pb2.GetTasksReply(
            tasks=[_short_task(t) for t in self._manager.tasks()], timestamp=now_ms()))

    def GetRoles(self, request: Any, context: grpc.ServicerContext) -> Any:
        """The environment's root role (with its tree), or with ``pathSpec`` (a glob on role
        paths) every role matching it."""
        def reply() -> Any:
            root = self._role(self._get(request.envId))
            result = o2control_pb2.GetRolesReply(timestamp=now_ms())
            if not request.pathSpec:
                result.roles.append(root)
                return result
            pending = [root]
            while pending:
                role = pending.pop(0)
                if fnmatch.fnmatch(role.fullPath, request.pathSpec):
                    result.roles.append(role)
                pending.extend(role.roles)
            return result
        return _answer(context, reply)

    # ------------------------------------------------------------------ environments

    def GetEnvironments(self, request: Any, context: grpc.ServicerContext) -> Any:
        def reply() -> Any:
            snaps = sorted(self._manager.list(),
                           key=lambda s: (self._created(s.id), s.id))
            return o2control_pb2.GetEnvironmentsReply(
                frameworkId=self.framework_id,
                environments=[self._info(s, with_tasks=request.showTaskInfos) for s in snaps],
                timestamp=now_ms())
        return _answer(context, reply)

    def _created(self, env_id: str) -> int:
        record = self._records.get(env_id)
        return record.created_ms if record is not None else 0

    def GetEnvironment(self, request: Any, context: grpc.ServicerContext) -> Any:
        def reply() -> Any:
            snap = self._get(request.id)
            record = self._records.get(snap.id)
            result = o2control_pb2.GetEnvironmentReply(
                environment=self._info(snap, with_tasks=True),
                public=bool(record and record.public),
                timestamp=now_ms())
            if request.showWorkflowTree:
                result.workflow.CopyFrom(self._role(snap))
            return result
        return _answer(context, reply)

    def _create(self, request: Any) -> tuple[EnvironmentSnapshot, User | None]:
        """CREATE; the new environment is marked busy with DEPLOY (the caller releases it)."""
        if not request.workflowTemplate:
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, "no workflowTemplate given")
        template = self._templates.get(request.workflowTemplate)
        detectors, run_type, variables = split_variables(request.vars)
        user = _user(request.requestUser, request.HasField("requestUser"))
        with self._lock:
            self._check_accepting()
            self._creating += 1
        try:
            created = now_ms()
            snap = self._manager.create(template.workflow, detectors=detectors,
                                        run_type=run_type, variables=variables, user=user)
            with self._lock:
                self._records[snap.id] = _Record(created, template.name,
                                                 template.workflow.description,
                                                 dict(template.workflow.defaults), variables,
                                                 request.public)
                self._busy[snap.id] = ("DEPLOY", time.monotonic())
        finally:
            with self._lock:
                self._creating -= 1
                self._lock.notify_all()
        return snap, user

    def _deploy_configure(self, env_id: str, user: User | None) -> EnvironmentSnapshot:
        """DEPLOY then CONFIGURE; on failure destroy (force), publish ``cannot create new
        environment`` (state ERROR, the error) and re-raise."""
        snap = self._manager.get(env_id)
        try:
            for transition in ("DEPLOY", "CONFIGURE"):
                with self._lock:
                    self._busy[env_id] = (transition, time.monotonic())
                snap = self._manager.transition(env_id, transition, user=user)
            return snap
        except Exception as exc:
            try:
                self._destroy_now(env_id, user, force=True)
            except Exception:
                log.exception("environment %s: teardown after a failed creation failed", env_id)
            self._manager.report_environment_event(
                attrs.evolve(snap, state=fsm.State.ERROR), CANNOT_CREATE, OpStatus.NULL,
                error=" ".join(str(exc).split()))  # as the manager's own CREATE failures
            raise

    def _destroy_now(self, env_id: str, user: User | None, *, force: bool) -> None:
        try:
            self._manager.destroy(env_id, user=user, force=force)
        finally:
            with self._lock:
                self._records.pop(env_id, None)

    def NewEnvironment(self, request: Any, context: grpc.ServicerContext) -> Any:
        def reply() -> Any:
            snap, user = self._create(request)
            try:
                snap = self._deploy_configure(snap.id, user)
            finally:
                self._release(snap.id)
            info = self._info(snap)
            if request.autoTransition:
                self._submit(snap.id, fsm.START_ACTIVITY, lambda: self._auto_start(snap.id, user))
            return o2control_pb2.NewEnvironmentReply(environment=info, public=request.public,
                                                     timestamp=now_ms())
        return _answer(context, reply)

    def _auto_start(self, env_id: str, user: User | None) -> None:
        with self._lock:
            self._busy[env_id] = (fsm.START_ACTIVITY, time.monotonic())
        self._manager.transition(env_id, fsm.START_ACTIVITY, user=user)

    def NewEnvironmentAsync(self, request: Any, context: grpc.ServicerContext) -> Any:
        def reply() -> Any:
            snap, user = self._create(request)
            info = self._info(snap)
            self._submit(snap.id, "DEPLOY", lambda: self._async_rest(snap, user, request))
            return o2control_pb2.NewEnvironmentReply(environment=info, public=request.public,
                                                     timestamp=now_ms())
        return _answer(context, reply)

    def _async_rest(self, created: EnvironmentSnapshot, user: User | None, request: Any) -> None:
        try:
            last = self._deploy_configure(created.id, user)
        except Exception:
            return  # reported as ``cannot create new environment``
        self._manager.report_environment_event(last, CREATED, OpStatus.DONE_OK)
        if request.autoTransition:
            self._auto_start(created.id, user)

    def ControlEnvironment(self, request: Any, context: grpc.ServicerContext) -> Any:
        def reply() -> Any:
            name = OPTYPES.get(request.type)
            if name is None:
                raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                                   f"no transition given (type {Optype.Optype.Name(request.type)})"
                                   if request.type in Optype.Optype.values() else
                                   f"unknown transition type {request.type}")
            self._get(request.id)
            user = _user(request.requestUser, request.HasField("requestUser"))
            with self._operation(request.id, name):
                start = now_ms()
                snap = self._manager.transition(request.id, name, user=user)
                end = now_ms()
            return o2control_pb2.ControlEnvironmentReply(
                id=snap.id, state=snap.state, currentRunNumber=snap.run_number or 0,
                startOfTransition=start, endOfTransition=end, transitionDuration=end - start,
                timestamp=now_ms())
        return _answer(context, reply)

    def DestroyEnvironment(self, request: Any, context: grpc.ServicerContext) -> Any:
        def reply() -> Any:
            self._get(request.id)
            user = _user(request.requestUser, request.HasField("requestUser"))
            with self._operation(request.id, fsm.DESTROY):
                snap = self._manager.get(request.id)
                if snap.state == fsm.State.RUNNING and not request.force:
                    if not request.allowInRunningState:
                        raise RequestError(
                            grpc.StatusCode.FAILED_PRECONDITION,
                            f"environment {request.id} is RUNNING (run {snap.run_number}): stop "
                            "the run first, or destroy with allowInRunningState or force")
                    snap = self._manager.transition(request.id, fsm.STOP_ACTIVITY, user=user)
                if snap.state == fsm.State.CONFIGURED:
                    try:
                        self._manager.transition(request.id, "RESET", user=user)
                    except TransitionError:
                        if not request.force:
                            raise
                self._destroy_now(request.id, user, force=request.force)
            return o2control_pb2.DestroyEnvironmentReply(
                cleanupTasksReply=o2control_pb2.CleanupTasksReply(timestamp=now_ms()),
                timestamp=now_ms())
        return _answer(context, reply)

    # ------------------------------------------------------------------ events

    def Subscribe(self, request: Any, context: grpc.ServicerContext) -> Iterator[bytes]:
        """Serialized ``events.Event`` messages, exactly as published (the server registers an
        identity serializer for this RPC)."""
        if request.id:
            try:
                self._manager.get(request.id)
            except EnvironmentNotFound as exc:
                context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
        if not self._accepting:
            context.abort(grpc.StatusCode.UNAVAILABLE, "the server is shutting down")
        if self._fanout.subscriber_count() >= self._max_subscribers:
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                          f"{self._max_subscribers} Subscribe streams are open already (each "
                          "holds a server thread); close one or subscribe to all environments "
                          "once")
        sub = self._fanout.subscribe(request.id)
        context.add_callback(sub.close)
        context.send_initial_metadata((("subscribed", request.id or "*"),))  # ready: see client
        try:
            while True:
                try:
                    value = sub.next(timeout_s=0.5)
                except SubscriptionEnded as exc:
                    context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))
                if value is not None:
                    yield value
                elif sub.closed() or not context.is_active():
                    return
        finally:
            sub.close()


def _short_task(task: Task) -> o2control_pb2.ShortTaskInfo:
    return o2control_pb2.ShortTaskInfo(
        name=task.name, taskId=task.task_id, status=task.status, state=task.state,
        className=task.class_name, critical=task.critical,
        deploymentInfo=o2control_pb2.TaskDeploymentInfo(hostname=task.hostname))


def _role_info(view: RoleView) -> o2control_pb2.RoleInfo:
    return o2control_pb2.RoleInfo(
        name=view.name, status=view.status, state=view.state, fullPath=view.path,
        taskIds=list(view.task_ids), roles=[_role_info(c) for c in view.children])


def _answer(context: grpc.ServicerContext, reply: Callable[[], _T]) -> _T:
    """``reply()``, with expected failures turned into gRPC statuses with their message."""
    try:
        return reply()
    except Exception as exc:
        code = status_of(exc)
        if code is None:
            log.exception("unexpected error in an RPC")
            _abort(context, grpc.StatusCode.INTERNAL,
                   f"unexpected {type(exc).__name__}: {exc}")
        _abort(context, code, " ".join(str(exc).split()))


def _abort(context: grpc.ServicerContext, code: grpc.StatusCode, message: str) -> NoReturn:
    context.abort(code, message)
    raise AssertionError("unreachable: context.abort raises")


def status_of(exc: BaseException) -> grpc.StatusCode | None:
    """The status code of an expected failure, None for an unexpected one."""
    if isinstance(exc, RequestError):
        return exc.code
    if isinstance(exc, EnvironmentNotFound):
        return grpc.StatusCode.NOT_FOUND
    if isinstance(exc, TransitionNotAllowed | DetectorInUse):
        return grpc.StatusCode.FAILED_PRECONDITION
    if isinstance(exc, Busy | TransitionError):
        return grpc.StatusCode.ABORTED
    if isinstance(exc, ShuttingDown):
        return grpc.StatusCode.UNAVAILABLE
    if isinstance(exc, UnknownTemplate | ValueError):
        return grpc.StatusCode.INVALID_ARGUMENT
    return None
