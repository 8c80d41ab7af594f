"""The environment manager: creates environments, drives their transitions, runs workflow calls,
moves tasks and roles, and fires the hooks, publishing the event stream described in
``docs/events.md`` (the reference system's stream).

A transition X from S to T publishes ``transition starting`` (STARTED), five step pairs
(``before_X``, ``leave_S``, ``tasks_X``, ``enter_T``, ``after_X``; each ``transition step
starting`` / ``transition step finished``, see :func:`aliecs_integration.engine.steps.run_step`)
and ``transition completed successfully`` (DONE_OK) or ``transition error`` (DONE_ERROR). The
state becomes T at the end of ``tasks_X`` (the tasks are there). Own work per step:

- ``before_START_ACTIVITY``: allocate the run number, set ``run_start_time_ms``, clear older
  completion/end times, run event STARTED; ``before_STOP_ACTIVITY``: ``run_end_time_ms``, STARTED;
  ``before_GO_ERROR`` with a run active: ``run_end_time_ms`` if unset, STARTED;
- ``leave_S``: ``on_env_leave_state``;
- ``tasks_X``: the task scheduler moves the tasks (task events, role events on change), then
  the state changes (``enter_state_time_ms``);
- ``enter_T``: ``on_env_enter_state``;
- ``after_START_ACTIVITY``: ``run_start_completion_time_ms``, run event DONE_OK (DONE_ERROR with
  the critical failures so far); ``after_STOP_ACTIVITY`` / ``after_GO_ERROR`` with a run:
  ``run_end_completion_time_ms``, DONE_OK/DONE_ERROR, and the run ends (``run_number`` ->
  ``last_run_number``) after that step's finished event.

Failures: only a critical call or a step's own work fails a step. In ``before_``/``leave_``/
``tasks_`` the transition is cancelled (``transition canceled with error: ...``, state kept,
:class:`TransitionError`). In ``enter_``/``after_`` the state is already T: the error is published
and kept in :meth:`EnvironmentManager.last_errors`; a failed START_ACTIVITY, or a critical task
in ERROR, is followed by ``a critical error occurred, GO_ERROR transition imminent`` and GO_ERROR.
A refused transition publishes ``transition starting`` and ``transition error`` and changes
nothing. CREATE and DESTROY publish their own fixed sequences (see :meth:`create`,
:meth:`destroy`).

Concurrency: one lock per environment, held for a whole operation (so one environment is
serialised) and no global lock while hooks or calls run (different environments never wait for
each other). A call function must not drive its own environment: it would wait for that lock
until its call times out (forever if it is nonblocking: those run on the driving thread).
"""

from __future__ import annotations

import builtins
import collections
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import partial
from typing import NoReturn

from aliecs_integration import hookspecs, names
from aliecs_integration.engine import fsm
from aliecs_integration.engine import workflow as workflows
from aliecs_integration.engine.call_runner import CallRunner
from aliecs_integration.engine.environment import Environment, new_environment_id
from aliecs_integration.engine.fsm import State
from aliecs_integration.engine.roles import RoleChange, RoleTree, RoleView
from aliecs_integration.engine.run_numbers import RunNumberStore
from aliecs_integration.engine.steps import (
    CallPlan,
    Host,
    StepCancelled,
    StepProgress,
    run_call,
    run_step,
    step_error,
)
from aliecs_integration.engine.tasks import (
    LocalTasks,
    Task,
    TaskRequest,
    TaskScheduler,
)
from aliecs_integration.engine.workflow import TemplateRef, Workflow, WorkflowError
from aliecs_integration.errors import DetectorInUse, EnvironmentNotFound, TransitionError
from aliecs_integration.records import (
    CallTraits,
    EnvironmentSnapshot,
    IntegratedServiceEvent,
    OpStatus,
    RoleEvent,
    RunEvent,
    StateChangeEvent,
    TaskEvent,
    TransitionStepEvent,
    User,
)

log = logging.getLogger(__name__)

TEARDOWN = "TEARDOWN"
TRANSITION_STARTING = "transition starting"
TRANSITION_DONE = "transition completed successfully"
TRANSITION_ERROR = "transition error"
GO_ERROR_IMMINENT = "a critical error occurred, GO_ERROR transition imminent"
CANNOT_CREATE = "cannot create new environment"
_RUN_TRANSITIONS = frozenset({fsm.START_ACTIVITY, fsm.STOP_ACTIVITY, fsm.GO_ERROR})
_StepWork = Callable[[], None] | None
_DONE = frozenset({OpStatus.DONE_OK, OpStatus.DONE_ERROR, OpStatus.DONE_TIMEOUT})
_TRAITS = {flag: CallTraits("", "", "", flag) for flag in (True, False)}


class _Slot:
    __slots__ = ("alive", "deployed", "env", "errors", "lock", "plan", "roles", "tasks",
                 "workflow")

    def __init__(self, env: Environment, workflow: Workflow, timeout_s: float) -> None:
        self.env = env
        self.lock = threading.Lock()
        self.alive = True
        self.deployed = False
        self.errors: tuple[str, ...] = ()
        self.tasks: dict[str, Task] = {}  # role path -> the task as last reported
        self.use(workflow, timeout_s)

    def use(self, workflow: Workflow, timeout_s: float) -> None:
        self.workflow = workflow
        self.plan = CallPlan(workflow, timeout_s)
        self.roles = RoleTree(workflow.role_tree)


class _Progress(StepProgress):
    """Plus: ``run_op`` once a run STARTED event went out, ``end_time_set`` if we set the end,
    ``end_run`` when the run ends after the ``after_`` step."""

    __slots__ = ("end_run", "end_time_set", "run_op")

    def __init__(self) -> None:
        super().__init__()
        self.run_op = False
        self.end_time_set = False
        self.end_run = False


class EnvironmentManager:
    """Creates, transitions and destroys environments; thread-safe (see module doc).

    ``settings_runtime_vars`` are the runtime variable defaults (Consul's
    ``o2/runtime/aliecs/vars/``); ``variable_defaults`` the lowest-precedence defaults (those the
    loaded plugins declare, :meth:`PluginHost.variable_defaults
    <aliecs_integration.host.PluginHost.variable_defaults>`); ``call_timeout_default_s`` applies
    to calls declaring none; at most ``max_call_workers`` call threads exist. ``tasks`` runs the
    task roles' tasks (default: the in-memory :class:`~aliecs_integration.engine.tasks.LocalTasks`).
    """

    def __init__(
        self,
        host: Host,
        *,
        settings_runtime_vars: Mapping[str, str],
        run_numbers: RunNumberStore,
        call_timeout_default_s: float = 30.0,
        max_call_workers: int = 16,
        default_workflow: Workflow | None = None,
        tasks: TaskScheduler | None = None,
        variable_defaults: Mapping[str, str] | None = None,
    ) -> None:
        if not call_timeout_default_s > 0:
            raise ValueError(
                f"call_timeout_default_s must be positive, got {call_timeout_default_s}"
            )
        self._host = host
        self._runtime_vars = dict(settings_runtime_vars)
        self._variable_defaults = dict(variable_defaults or {})
        self._run_numbers = run_numbers
        self._timeout_s = call_timeout_default_s
        self._runner = CallRunner(max_call_workers)
        self._default_workflow = default_workflow or workflows.default_workflow()
        self._tasks: TaskScheduler = tasks if tasks is not None else LocalTasks()
        self._slots: dict[str, _Slot] = {}
        self._slots_lock = threading.Lock()
        self._detectors: dict[str, str] = {}  # detector -> environment id holding it

    # ------------------------------------------------------------------ public API

    def set_defaults(self, runtime_vars: Mapping[str, str],
                     plugin_defaults: Mapping[str, str]) -> None:
        """Live settings: new runtime variable defaults (Consul's ``o2/runtime/aliecs/vars/``
        or ``runtimeVars``) and plugin variable defaults, for the environments created from
        now on and for the next calls of every existing one (see
        :meth:`Environment.set_defaults
        <aliecs_integration.engine.environment.Environment.set_defaults>`)."""
        with self._slots_lock:  # with create's registration: no environment is missed
            self._runtime_vars = dict(runtime_vars)
            self._variable_defaults = dict(plugin_defaults)
            for slot in self._slots.values():
                slot.env.set_defaults(self._runtime_vars, self._variable_defaults)

    def create(
        self,
        workflow: Workflow | TemplateRef | None = None,
        *,
        detectors: Iterable[str] = (),
        run_type: str = "",
        variables: Mapping[str, str] | None = None,
        user: User | None = None,
    ) -> EnvironmentSnapshot:
        """Create an environment (default workflow when None; a :class:`TemplateRef` is loaded
        now). Publishes ``transition starting``, ``before_CREATE`` (``instantiating``,
        ``running hooks``: its calls run), ``CREATE`` (``loading workflow``), ``after_CREATE``
        (``workflow loaded``, state STANDBY, with the variables) and ``transition completed
        successfully``. A template that cannot be loaded, a detector held by another
        environment, or a failing critical CREATE call publishes ``transition error`` and
        ``cannot create new environment`` (state ERROR) and raises :class:`TransitionError`.
        Raises ``ValueError`` for malformed detectors or variables (nothing published)."""
        source = workflow or self._default_workflow
        while True:
            runtime_vars, plugin_defaults = self._runtime_vars, self._variable_defaults
            env = Environment(
                new_environment_id(), detectors=detectors, run_type=run_type,
                user_vars=variables, runtime_vars=runtime_vars,
                defaults=source.defaults if isinstance(source, Workflow) else None,
                workflow=source.template_info(), user=user,
                plugin_defaults=plugin_defaults,
            )
            pending = source if isinstance(source, Workflow) else Workflow(env.id)
            slot = _Slot(env, pending, self._timeout_s)
            slot.lock.acquire()
            with self._slots_lock:
                if env.id not in self._slots:
                    self._slots[env.id] = slot
                    if (self._runtime_vars is not runtime_vars
                            or self._variable_defaults is not plugin_defaults):
                        # set_defaults ran since they were read, before this one was listed
                        env.set_defaults(self._runtime_vars, self._variable_defaults)
                    break
            slot.lock.release()
        try:
            return self._create(slot, source)
        finally:
            slot.lock.release()

    def _create(self, slot: _Slot, source: Workflow | TemplateRef) -> EnvironmentSnapshot:
        env, create = slot.env, fsm.CREATE
        self._env_event(env, create, "", OpStatus.STARTED, TRANSITION_STARTING)
        if isinstance(source, TemplateRef):
            try:
                loaded = source.load()
            except WorkflowError as exc:
                self._creation_failed(slot, f"cannot load workflow template: {exc}")
            env.apply_workflow(loaded.defaults, loaded.template_info())
            slot.use(loaded, self._timeout_s)
        progress = _Progress()
        self._env_event(env, create, "before_CREATE", OpStatus.STARTED, "instantiating")
        self._env_event(env, create, "before_CREATE", OpStatus.ONGOING, "running hooks")
        self._create_calls(slot, "before_CREATE", progress)
        self._env_event(env, create, create, OpStatus.ONGOING, "loading workflow")
        with self._slots_lock:
            taken = sorted(f"{d} (environment {self._detectors[d]})" for d in env.detectors
                           if d in self._detectors)
            if not taken:
                self._detectors.update(dict.fromkeys(env.detectors, env.id))
        if taken:
            self._creation_failed(slot, f"detector(s) already in use: {', '.join(taken)}",
                                  DetectorInUse)
        self._create_calls(slot, create, progress)
        env.set_state(State.STANDBY, time.time_ns())
        self._env_event(env, create, "after_CREATE", OpStatus.DONE_OK, "workflow loaded",
                        include_vars=True)
        self._env_event(env, create, "", OpStatus.DONE_OK, TRANSITION_DONE)
        self._finish(slot, create, progress)
        return env.snapshot()

    def _create_calls(self, slot: _Slot, step: str, progress: _Progress) -> None:
        negative, positive = slot.plan.at(step)
        failures = []
        for call in (*negative, *positive):
            failed = run_call(self._host, self._runner, slot.env, call, step)
            if failed is not None:
                progress.errors.append(failed[1])
                if call.spec.critical:
                    failures.append(failed[0])
        if failures:
            self._finish(slot, fsm.CREATE, progress)
            self._creation_failed(slot, step_error(step, failures))

    def _creation_failed(self, slot: _Slot, error: str,
                         kind: type[TransitionError] = TransitionError) -> NoReturn:
        """Publish the CREATE failure events, forget the environment, raise ``kind``."""
        env = slot.env
        self._env_event(env, fsm.CREATE, "", OpStatus.DONE_ERROR, TRANSITION_ERROR, error)
        env.set_state(State.ERROR, time.time_ns())
        self._env_event(env, "", "", OpStatus.NULL, CANNOT_CREATE, error)
        self._forget(slot)
        raise kind(f"environment {env.id}: {CANNOT_CREATE}: {error}")

    def transition(
        self, env_id: str, name: str, *, user: User | None = None
    ) -> EnvironmentSnapshot:
        """Run transition ``name``; returns the environment afterwards.

        Raises :class:`EnvironmentNotFound`; :class:`TransitionError` when the transition is not
        allowed (``transition starting`` and ``transition error`` are published, nothing
        changes), when a critical failure cancels it, or when a failed START_ACTIVITY took the
        environment to ERROR.
        """
        slot = self._slot(env_id)
        with slot.lock:
            self._alive(slot, env_id)
            return self._transition(slot, name, user)

    def fail_task(self, env_id: str, role_path: str) -> EnvironmentSnapshot:
        """Make the task of task role ``role_path`` fail (state ERROR): its task and role events;
        a critical task then drives the environment through ``a critical error occurred, GO_ERROR
        transition imminent`` into ERROR. Raises :class:`EnvironmentNotFound`, ``ValueError``
        when the environment has no task for that role."""
        slot = self._slot(env_id)
        with slot.lock:
            env = self._alive(slot, env_id)
            try:
                changed = self._tasks.fail(env.id, role_path)
            except KeyError as exc:
                raise ValueError(exc.args[0]) from None
            self._publish_tasks(slot, changed)
            for task in changed:
                if task.critical and env.state in fsm.TRANSITIONS[fsm.GO_ERROR][0]:
                    self._go_error(slot, f"critical task '{task.role_path}' on host "
                                         f"'{task.hostname}' transitioned to ERROR")
            return env.snapshot()

    def destroy(
        self, env_id: str, *, user: User | None = None, force: bool = False
    ) -> EnvironmentSnapshot:
        """Tear the environment down; returns its last snapshot (state DONE).

        Refused without any event for an environment in DONE (:class:`TransitionError`) or an
        unknown id (:class:`EnvironmentNotFound`). From CONFIGURED a RESET runs first (if it
        fails, :class:`TransitionError` unless ``force``). From RUNNING the run ends (end times,
        one TEARDOWN STARTED run event in ``leave_RUNNING``). Then, with transition DESTROY and
        run number 0: ``before_DESTROY`` ``workflow teardown started``, ``leave_S`` ``workflow
        teardown ongoing``, ``DESTROY`` ``releasing tasks``, ``after_DESTROY`` ``running DESTROY
        hooks``, ``after_DESTROY`` ``environment teardown complete`` (DONE_OK, state DONE) or
        ``environment teardown finished with error`` (DONE_ERROR). Calls run at each of those
        steps; failures never stop the teardown.
        """
        slot = self._slot(env_id)
        with slot.lock:
            env = self._alive(slot, env_id)
            if env.state == State.DONE:
                raise TransitionError(f"environment {env_id} is DONE: it cannot be destroyed")
            env.set_last_request_user(user)
            if env.state == State.CONFIGURED:
                try:
                    self._transition(slot, "RESET")
                except TransitionError:
                    if not force:
                        raise
            self._teardown(slot)
            return env.snapshot()

    def report_integrated_service_event(
        self, env_id: str, service: str, operation_name: str, status: OpStatus, *,
        step: str = "", step_status: OpStatus = OpStatus.NULL, error: str = "",
        payload: str = "", name: str = "",
    ) -> None:
        """Fire ``on_integrated_service_event`` for an operation not made by a workflow call;
        ``service`` is lower-cased (``DCS`` -> ``dcs``) and ``name`` defaults to the
        environment's root role path when the environment exists. Raises
        :class:`~aliecs_integration.names.InvalidName` (a ``ValueError``) for a name that cannot
        be part of a topic name (see :mod:`aliecs_integration.names`)."""
        service = names.service_name(service)  # InvalidName (a ValueError) names the problem
        if not name:
            slot = self._slots.get(env_id)
            name = slot.workflow.name if slot is not None else ""
        self._host.fire(hookspecs.on_integrated_service_event, IntegratedServiceEvent(
            service=service, environment_id=env_id, operation_name=operation_name,
            operation_status=status, name=name, operation_step=step,
            operation_step_status=step_status, error=error, payload=payload,
        ))

    def get(self, env_id: str) -> EnvironmentSnapshot:
        """The environment now (never waits for a running transition). Raises
        :class:`EnvironmentNotFound`."""
        return self._slot(env_id).env.snapshot()

    def list(self) -> builtins.list[EnvironmentSnapshot]:
        """Every environment (PENDING ones being created included)."""
        with self._slots_lock:
            slots = list(self._slots.values())
        return [slot.env.snapshot() for slot in slots]

    def count_by_state(self) -> dict[str, int]:
        """How many environments are in each state now (PENDING ones being created included;
        states no environment is in are absent). Never waits for a running transition."""
        with self._slots_lock:
            states = [slot.env.state for slot in self._slots.values()]
        return dict(collections.Counter(states))

    def active_runs(self) -> int:
        """How many environments have a run in progress (a run number, Start of Run done, End
        of Run not yet). Never waits for a running transition."""
        with self._slots_lock:
            return sum(1 for slot in self._slots.values() if slot.env.run_number is not None)

    def active_detectors(self) -> dict[str, str]:
        """Detector -> id of the environment holding it (held from creation to destruction)."""
        with self._slots_lock:
            return dict(sorted(self._detectors.items()))

    def tasks(self, env_id: str | None = None) -> builtins.list[Task]:
        """The tasks of one environment (every environment when None) as the scheduler last
        reported them, in role order. Raises :class:`EnvironmentNotFound`."""
        with self._slots_lock:
            slots = [self._slot(env_id)] if env_id is not None else list(self._slots.values())
        return [task for slot in slots for task in dict(slot.tasks).values()]

    def roles(self, env_id: str) -> RoleView:
        """The environment's role tree with each role's status and state now (read without
        waiting for a running transition). Raises :class:`EnvironmentNotFound`."""
        slot = self._slot(env_id)
        tasks = {t.role_path: t.task_id for t in dict(slot.tasks).values()}
        return slot.roles.view(tasks)

    def report_environment_event(
        self, environment: EnvironmentSnapshot, message: str, status: OpStatus, *,
        error: str = "",
    ) -> None:
        """Fire an environment event outside any transition (no transition, no step), e.g.
        ``created new environment`` at the end of an asynchronous creation."""
        self._host.fire(hookspecs.on_env_transition_step, TransitionStepEvent(
            environment, "", "", status, status in _DONE, message, error))

    def last_errors(self, env_id: str) -> tuple[str, ...]:
        """Call and step errors of the environment's last completed or cancelled operation."""
        return self._slot(env_id).errors

    def close(self) -> None:
        """Stop the call workers; calls made afterwards fail with DONE_ERROR. Environments stay."""
        self._runner.close()

    # ------------------------------------------------------------------ transitions

    def _env_event(self, env: Environment, transition: str, step: str, status: OpStatus,
                   message: str, error: str = "", *, include_vars: bool = False) -> None:
        self._host.fire(hookspecs.on_env_transition_step, TransitionStepEvent(
            env.snapshot(), transition, step, status, status in _DONE, message, error,
            include_vars=include_vars))

    def _transition(self, slot: _Slot, name: str, user: User | None = None
                    ) -> EnvironmentSnapshot:
        """A refused transition changes nothing (not even the last request's user)."""
        env = slot.env
        from_state = env.state
        try:
            to_state = fsm.next_state(env.id, name, from_state)
        except TransitionError:
            self._env_event(env, name, "", OpStatus.STARTED, TRANSITION_STARTING)
            self._env_event(env, name, "", OpStatus.DONE_ERROR, TRANSITION_ERROR,
                            f"event {name} inappropriate in current state {from_state}")
            raise
        env.set_last_request_user(user)
        self._env_event(env, name, "", OpStatus.STARTED, TRANSITION_STARTING)
        before, leave, tasks, enter, after = fsm.step_names(name, from_state, to_state)
        progress = _Progress()
        sor_eor = name in _RUN_TRANSITIONS
        step = partial(self._step, slot, name, progress)
        try:
            step(before, partial(self._sor_eor_before, env, name, progress) if sor_eor else None)
            step(leave, partial(self._leave, slot, name, from_state))
            step(tasks, partial(self._move_tasks, slot, name, to_state))
        except StepCancelled as cancelled:
            self._cancel_run_op(slot, name, progress, cancelled.error)
            self._env_event(env, name, "", OpStatus.DONE_ERROR, TRANSITION_ERROR,
                            f"transition canceled with error: {cancelled.error}")
            self._finish(slot, name, progress)
            raise TransitionError(
                f"environment {env.id}: transition {name} cancelled at step {cancelled.step}: "
                f"{cancelled.description}; state stays {from_state}"
            ) from None
        enter_error = step(enter, partial(self._enter, slot, name, to_state))
        error = step(after, partial(self._sor_eor_after, env, name, progress) if sor_eor
                     else None, inherited_error=enter_error)
        if progress.end_run:
            env.end_run()
        if not error:
            self._env_event(env, name, "", OpStatus.DONE_OK, TRANSITION_DONE)
            self._finish(slot, name, progress)
            return env.snapshot()
        self._env_event(env, name, "", OpStatus.DONE_ERROR, TRANSITION_ERROR, error)
        self._finish(slot, name, progress)
        if name != fsm.START_ACTIVITY:
            return env.snapshot()
        self._go_error(slot, f"transition {name} failed: {error}")
        raise TransitionError(f"environment {env.id}: transition {name} failed: {error}; "
                              f"state {env.state}")

    def _step(self, slot: _Slot, transition: str, progress: _Progress, step: str,
              work: _StepWork, *, inherited_error: str = "") -> str:
        return run_step(self._host, self._runner, slot.env, slot.plan, transition, step, work,
                        progress, cancellable=fsm.cancels_on_critical_failure(step),
                        inherited_error=inherited_error)

    def _go_error(self, slot: _Slot, reason: str) -> None:
        """``a critical error occurred, GO_ERROR transition imminent``, then GO_ERROR."""
        env = slot.env
        log.error("environment %s: %s: %s", env.id, GO_ERROR_IMMINENT, reason)
        self._env_event(env, "", "", OpStatus.NULL, GO_ERROR_IMMINENT, reason)
        if env.state not in fsm.TRANSITIONS[fsm.GO_ERROR][0]:
            return
        try:
            self._transition(slot, fsm.GO_ERROR)
        except TransitionError as exc:
            log.error("environment %s: GO_ERROR failed: %s", env.id, exc)

    def _leave(self, slot: _Slot, transition: str, state: str) -> None:
        self._host.fire(hookspecs.on_env_leave_state,
                        StateChangeEvent(slot.env.snapshot(), state, transition))

    def _enter(self, slot: _Slot, transition: str, state: str) -> None:
        env = slot.env
        self._host.fire(hookspecs.on_env_enter_state, StateChangeEvent(
            env.snapshot(), state, transition, int(env.get("enter_state_time_ms") or 0)
            * 1_000_000))

    def _move_tasks(self, slot: _Slot, transition: str, to_state: str) -> None:
        """``tasks_X``: the scheduler moves the tasks, call roles follow, the state is T."""
        env, workflow = slot.env, slot.workflow
        if transition == "DEPLOY" and not slot.deployed:
            requests = [
                TaskRequest(role.path, role.path.rpartition(".")[0],
                            workflow.class_name(role.task_class), role.host, role.critical)
                for role in workflow.task_roles()
            ]
            changed = self._tasks.deploy(env.id, requests)
            slot.deployed = True
        else:
            changed = self._tasks.transition(env.id, transition)
        self._publish_tasks(slot, changed)
        if transition == "DEPLOY":
            self._publish_roles(slot, slot.roles.update(
                {role.path: ("ACTIVE", None) for role in slot.roles.leaves(workflows.CALL)}))
        env.set_state(to_state, time.time_ns())

    def _publish_tasks(self, slot: _Slot, changed: Sequence[Task], *,
                       released: bool = False) -> None:
        """Task events, then the role events of what they changed. Tasks that change together
        (one scheduler answer) update the role tree once, so an aggregator goes straight to
        its new value. A task that changes twice (launch) updates the tree in between."""
        fire = self._host.fire
        batch: dict[str, tuple[str | None, str | None]] = {}
        for task in changed:
            if task.role_path in batch:
                self._publish_roles(slot, slot.roles.update(batch))
                batch = {}
            slot.tasks[task.role_path] = task
            fire(hookspecs.on_task_event, TaskEvent(
                task.name, task.task_id, task.state, task.status,
                "" if released else task.environment_id, task.hostname, task.class_name,
                "" if released else task.parent_path, _TRAITS[task.critical]))
            batch[task.role_path] = (task.status, task.state)
        if batch:
            self._publish_roles(slot, slot.roles.update(batch))

    def _publish_roles(self, slot: _Slot, changes: Sequence[RoleChange]) -> None:
        fire, env_id = self._host.fire, slot.env.id
        for change in changes:
            fire(hookspecs.on_role_event, RoleEvent(change.name, change.status, change.state,
                                            change.path, env_id))

    # ------------------------------------------------------------------ DESTROY

    def _teardown(self, slot: _Slot) -> None:
        env, destroy = slot.env, fsm.DESTROY
        current = env.state
        run_number = env.run_number
        if run_number is not None:
            self._stamp(env, "run_end_time_ms", only_if_unset=True)
            self._stamp(env, "run_end_completion_time_ms", only_if_unset=True)
            env.end_run(keep_variable=True)  # runNumber 0 on the teardown events
        progress = _Progress()
        failures: list[str] = []
        before, leave, release, after = fsm.destroy_step_names(current)

        def calls(step: str, work: _StepWork = None) -> None:
            negative, positive = slot.plan.at(step)
            for i, group in enumerate((negative, positive)):
                if i == 1 and work is not None:
                    try:
                        work()
                    except Exception as exc:
                        failures.append(f"{step} failed: {exc}")
                        log.error("environment %s: %s failed", env.id, step, exc_info=exc)
                for call in group:
                    failed = run_call(self._host, self._runner, env, call, step)
                    if failed is not None:
                        progress.errors.append(failed[1])
                        if call.spec.critical:
                            failures.append(failed[0])

        def leave_work() -> None:
            self._leave(slot, destroy, current)
            if run_number is not None:
                moment = int(env.get("run_end_time_ms") or 0) * 1_000_000
                self._host.fire(hookspecs.on_run_sor_eor, RunEvent(
                    env.id, run_number, current, TEARDOWN, OpStatus.STARTED, "", None, moment))

        self._env_event(env, destroy, before, OpStatus.STARTED, "workflow teardown started")
        calls(before)
        self._env_event(env, destroy, leave, OpStatus.ONGOING, "workflow teardown ongoing")
        calls(leave, leave_work)
        self._env_event(env, destroy, release, OpStatus.ONGOING, "releasing tasks")
        calls(release, partial(self._release_tasks, slot))
        self._env_event(env, destroy, after, OpStatus.ONGOING, "running DESTROY hooks")
        calls(after)
        env.set_state(State.DONE, time.time_ns())
        if failures:
            self._env_event(env, destroy, after, OpStatus.DONE_ERROR,
                            "environment teardown finished with error",
                            step_error(after, failures))
        else:
            self._env_event(env, destroy, after, OpStatus.DONE_OK,
                            "environment teardown complete")
        progress.critical += failures
        self._finish(slot, destroy, progress)
        self._forget(slot)

    def _release_tasks(self, slot: _Slot) -> None:
        self._publish_tasks(slot, self._tasks.release(slot.env.id), released=True)
        if slot.deployed:
            self._publish_roles(slot, slot.roles.update(
                {role.path: ("INACTIVE", None) for role in slot.roles.leaves(workflows.CALL)}))

    # ------------------------------------------------------------------ runs (SOR / EOR)

    def _fire_run(self, env: Environment, transition: str, status: OpStatus, moment_ns: int,
                  error: str = "") -> None:
        assert env.run_number is not None
        self._host.fire(hookspecs.on_run_sor_eor, RunEvent(
            env.id, env.run_number, env.state, transition, status, error, env.last_request_user,
            moment_ns))

    @staticmethod
    def _stamp(env: Environment, variable: str, *, only_if_unset: bool) -> tuple[bool, int]:
        """Set a run timing variable; (whether it was set, the moment it holds in ns)."""
        now = time.time_ns()
        if env.set_time_var(variable, now, only_if_unset=only_if_unset):
            return True, now
        return False, int(env.get(variable) or 0) * 1_000_000

    def _sor_eor_before(self, env: Environment, name: str, progress: _Progress) -> None:
        if name == fsm.START_ACTIVITY:
            now = time.time_ns()
            env.start_run(self._run_numbers.next(), now)
        elif env.run_number is not None:  # STOP_ACTIVITY, or GO_ERROR while running
            progress.end_time_set, now = self._stamp(
                env, "run_end_time_ms", only_if_unset=name == fsm.GO_ERROR)
        else:
            return
        progress.run_op = True
        self._fire_run(env, name, OpStatus.STARTED, now)

    def _sor_eor_after(self, env: Environment, name: str, progress: _Progress) -> None:
        if not progress.run_op or env.run_number is None:
            return
        start = name == fsm.START_ACTIVITY
        variable = "run_start_completion_time_ms" if start else "run_end_completion_time_ms"
        _, now = self._stamp(env, variable, only_if_unset=name == fsm.GO_ERROR)
        error = "" if name == fsm.GO_ERROR else "; ".join(progress.critical)
        self._fire_run(env, name, OpStatus.DONE_ERROR if error else OpStatus.DONE_OK, now, error)
        progress.end_run = not start

    def _cancel_run_op(self, slot: _Slot, name: str, progress: _Progress, error: str) -> None:
        env = slot.env
        if not progress.run_op or env.run_number is None:
            return
        self._fire_run(env, name, OpStatus.DONE_ERROR, time.time_ns(), f"cancelled: {error}")
        if name == fsm.START_ACTIVITY:
            env.end_run()
        elif progress.end_time_set:
            env.unset_var("run_end_time_ms")

    # ------------------------------------------------------------------ bookkeeping

    def _finish(self, slot: _Slot, operation: str, progress: _Progress) -> None:
        slot.errors = tuple(progress.errors)
        for error in progress.errors:
            log.warning("environment %s: %s: %s", slot.env.id, operation, error)

    def _slot(self, env_id: str) -> _Slot:
        slot = self._slots.get(env_id)
        if slot is None:
            raise EnvironmentNotFound(f"no environment with id {env_id!r}")
        return slot

    def _alive(self, slot: _Slot, env_id: str) -> Environment:
        if not slot.alive:
            raise EnvironmentNotFound(f"environment {env_id!r} was destroyed")
        return slot.env

    def _forget(self, slot: _Slot) -> None:
        slot.alive = False
        env_id = slot.env.id
        with self._slots_lock:
            self._slots.pop(env_id, None)
            for detector in slot.env.detectors:
                if self._detectors.get(detector) == env_id:
                    del self._detectors[detector]
