"""The environment manager: creates environments, drives their transitions, runs workflow calls
and fires the hooks, exactly as ``docs/lifecycle.md`` says.

Each step (``before_X``, ``leave_S``, ``enter_T``, ``after_X``; for CREATE ``before_CREATE``,
``CREATE``; for DESTROY ``before_DESTROY``, ``leave_S``, ``DESTROY``, ``after_DESTROY``) fires
``on_env_transition_step`` (started), runs the step's negative-weight calls, the step's own work,
the weight >= 0 calls (equal weights in declared order), then fires it again (finished: ONGOING,
or DONE_ERROR with every error of the step joined by ``"; "``); see
:func:`aliecs_integration.engine.steps.run_step`. Own work per step:

- ``before_START_ACTIVITY``: allocate the run number, set ``run_start_time_ms``, clear older
  completion/end times, run event STARTED; ``before_STOP_ACTIVITY``: ``run_end_time_ms``, STARTED;
  ``before_GO_ERROR`` with a run active: ``run_end_time_ms`` if unset, STARTED;
- ``leave_S``: ``on_env_leave_state``;
- ``enter_T``: state change (``enter_state_time_ms``), ``on_env_enter_state``, then
  ``on_role_event`` for the root role (role path = workflow name; status INACTIVE in STANDBY and
  DONE, ACTIVE otherwise). A role event also fires when CREATE ends in STANDBY;
- ``after_START_ACTIVITY``: ``run_start_completion_time_ms``, run event DONE_OK, or DONE_ERROR with
  the critical failures of the transition so far; ``after_STOP_ACTIVITY``:
  ``run_end_completion_time_ms``, DONE_OK/DONE_ERROR, ``run_number`` -> ``last_run_number``;
  ``after_GO_ERROR`` with a run active: ``run_end_completion_time_ms`` if unset, DONE_OK, and the
  run ends like after a stop.

Failures: a failing critical call (or failing own work) in ``before_*``/``leave_*``/CREATE stops
the step, fires the finished event and raises :class:`TransitionError` (state unchanged; a run
operation whose STARTED event went out gets DONE_ERROR: a cancelled START_ACTIVITY ends its run,
a cancelled STOP_ACTIVITY/GO_ERROR keeps it and clears ``run_end_time_ms``). In ``enter_*``/
``after_*`` failures are logged and kept in :meth:`EnvironmentManager.last_errors`; nothing is
undone. Non-critical failures are reported the same way and the transition goes on.

Concurrency: one lock per environment, held for a whole operation (so one environment is
serialised) and no global lock while hooks or calls run (different environments never wait for
each other). A call function must not drive its own environment: it would wait for that lock
until its call times out (forever if it is nonblocking: those run on the driving thread).
"""

from __future__ import annotations

import builtins
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from functools import partial

from aliecs_integration.engine import fsm
from aliecs_integration.engine import workflow as workflows
from aliecs_integration.engine.call_runner import CallRunner
from aliecs_integration.engine.environment import Environment, new_environment_id
from aliecs_integration.engine.fsm import State
from aliecs_integration.engine.run_numbers import RunNumberStore
from aliecs_integration.engine.steps import (
    CallPlan,
    Host,
    StepCancelled,
    StepProgress,
    run_step,
)
from aliecs_integration.engine.workflow import Workflow
from aliecs_integration.errors import EnvironmentNotFound, TransitionError
from aliecs_integration.records import (
    EnvironmentSnapshot,
    IntegratedServiceEvent,
    OpStatus,
    RoleEvent,
    RunEvent,
    StateChangeEvent,
    User,
)

log = logging.getLogger(__name__)

TEARDOWN = "TEARDOWN"
_StepWork = tuple[str, Callable[[], None] | None]
_RUN_TRANSITIONS = frozenset({fsm.START_ACTIVITY, fsm.STOP_ACTIVITY, fsm.GO_ERROR})


class _Slot:
    __slots__ = ("alive", "env", "errors", "lock", "plan", "role")

    def __init__(self, env: Environment, plan: CallPlan, role: str) -> None:
        self.env = env
        self.plan = plan
        self.role = role
        self.lock = threading.Lock()
        self.alive = True
        self.errors: tuple[str, ...] = ()


class _Progress(StepProgress):
    """Plus: ``run_op`` once a run STARTED event went out, ``end_time_set`` if we set the end."""

    __slots__ = ("end_time_set", "run_op")

    def __init__(self) -> None:
        super().__init__()
        self.run_op = False
        self.end_time_set = False


class EnvironmentManager:
    """Creates, transitions and destroys environments; thread-safe (see module doc).

    ``settings_runtime_vars`` are the runtime variable defaults (Consul's
    ``o2/runtime/aliecs/vars/``); ``call_timeout_default_s`` applies to calls declaring none;
    at most ``max_call_workers`` call threads exist (see :mod:`aliecs_integration.engine.steps`).
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
    ) -> None:
        if not call_timeout_default_s > 0:
            raise ValueError(
                f"call_timeout_default_s must be positive, got {call_timeout_default_s}"
            )
        self._host = host
        self._runtime_vars = dict(settings_runtime_vars)
        self._run_numbers = run_numbers
        self._timeout_s = call_timeout_default_s
        self._runner = CallRunner(max_call_workers)
        self._default_workflow = default_workflow or workflows.default_workflow()
        self._slots: dict[str, _Slot] = {}
        self._slots_lock = threading.Lock()

    # ------------------------------------------------------------------ public API

    def create(
        self,
        workflow: Workflow | None = None,
        *,
        detectors: Iterable[str] = (),
        run_type: str = "",
        variables: Mapping[str, str] | None = None,
        user: User | None = None,
    ) -> EnvironmentSnapshot:
        """Create an environment (default workflow when None): steps ``before_CREATE`` and
        ``CREATE`` in state PENDING, then STANDBY. Raises ``ValueError`` for malformed detectors
        or variables, :class:`TransitionError` when a critical call cancels the creation."""
        workflow = workflow or self._default_workflow
        plan = CallPlan(workflow, self._timeout_s)
        while True:
            env = Environment(
                new_environment_id(), detectors=detectors, run_type=run_type,
                user_vars=variables, runtime_vars=self._runtime_vars,
                defaults=workflow.defaults, workflow=workflow.template_info(), user=user,
            )
            slot = _Slot(env, plan, workflow.name)
            slot.lock.acquire()
            with self._slots_lock:
                if env.id not in self._slots:
                    self._slots[env.id] = slot
                    break
            slot.lock.release()
        try:
            progress = _Progress()
            try:
                self._steps(slot, fsm.CREATE, [(step, None) for step in fsm.CREATE_STEPS],
                            progress)
            except StepCancelled as cancelled:
                self._forget(slot)
                raise TransitionError(
                    f"environment {env.id}: creation cancelled at step {cancelled.step}: "
                    f"{cancelled.error}"
                ) from None
            now = time.time_ns()
            env.set_state(State.STANDBY, now)
            self._fire_role(slot, now)
            self._finish(slot, fsm.CREATE, progress)
            return env.snapshot()
        finally:
            slot.lock.release()

    def transition(
        self, env_id: str, name: str, *, user: User | None = None
    ) -> EnvironmentSnapshot:
        """Run transition ``name``; returns the environment afterwards.

        Raises :class:`EnvironmentNotFound`; :class:`TransitionError` when the transition is not
        allowed (nothing changes, nothing fires) or a critical call cancels it.
        """
        slot = self._slot(env_id)
        with slot.lock:
            env = self._alive(slot, env_id)
            from_state = env.state
            to_state = fsm.next_state(env_id, name, from_state)
            env.set_last_request_user(user)
            before, leave, enter, after = fsm.step_names(name, from_state, to_state)
            progress = _Progress()
            sor_eor = name in _RUN_TRANSITIONS
            try:
                self._steps(slot, name, [
                    (before, partial(self._sor_eor_before, env, name, progress) if sor_eor
                     else None),
                    (leave, partial(self._leave, slot, name, from_state)),
                    (enter, partial(self._enter, slot, name, to_state)),
                    (after, partial(self._sor_eor_after, env, name, progress) if sor_eor
                     else None),
                ], progress)
            except StepCancelled as cancelled:
                self._cancel_run_op(slot, name, progress, cancelled.error)
                self._finish(slot, name, progress)
                raise TransitionError(
                    f"environment {env_id}: transition {name} cancelled at step {cancelled.step}: "
                    f"{cancelled.error}; state stays {from_state}"
                ) from None
            self._finish(slot, name, progress)
            return env.snapshot()

    def destroy(
        self, env_id: str, *, user: User | None = None, force: bool = False
    ) -> EnvironmentSnapshot:
        """Destroy from any state; returns the last snapshot. A RUNNING environment's run is
        ended first (end times set if unset, a TEARDOWN STARTED run event for each). A critical
        failure in ``before_DESTROY``/``leave_S`` cancels (:class:`TransitionError`) unless
        ``force``. Raises :class:`EnvironmentNotFound`."""
        slot = self._slot(env_id)
        with slot.lock:
            env = self._alive(slot, env_id)
            env.set_last_request_user(user)
            current = env.state
            if env.run_number is not None:
                for variable in ("run_end_time_ms", "run_end_completion_time_ms"):
                    was_set, now = self._stamp(env, variable, only_if_unset=True)
                    if was_set:
                        self._fire_run(env, TEARDOWN, OpStatus.STARTED, now)
            before, leave, destroy, after = fsm.destroy_step_names(current)
            progress = _Progress()
            try:
                self._steps(slot, fsm.DESTROY, [
                    (before, None), (leave, partial(self._leave, slot, fsm.DESTROY, current)),
                    (destroy, None), (after, None),
                ], progress, force=force)
            except StepCancelled as cancelled:
                self._finish(slot, fsm.DESTROY, progress)
                raise TransitionError(
                    f"environment {env_id}: destroy cancelled at step {cancelled.step}: "
                    f"{cancelled.error}; state stays {current} (use force to destroy anyway)"
                ) from None
            self._finish(slot, fsm.DESTROY, progress)
            self._forget(slot)
            return env.snapshot()

    def report_integrated_service_event(
        self, env_id: str, service: str, operation_name: str, status: OpStatus, *,
        step: str = "", step_status: OpStatus = OpStatus.NULL, error: str = "",
        payload: str = "", name: str = "",
    ) -> None:
        """Fire ``on_integrated_service_event``; ``service`` is lower-cased (``DCS`` -> ``dcs``)
        and ``name`` defaults to the environment's root role path when the environment exists.
        Raises ``ValueError`` for an empty or non-identifier service name."""
        service = service.strip().lower()
        if not service.replace("-", "_").isidentifier():
            raise ValueError(f"integrated service name must be a plain word, got {service!r}")
        if not name:
            slot = self._slots.get(env_id)
            name = slot.role if slot is not None else ""
        self._host.fire("on_integrated_service_event", IntegratedServiceEvent(
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

    def last_errors(self, env_id: str) -> tuple[str, ...]:
        """Call and step errors of the environment's last completed or cancelled operation."""
        return self._slot(env_id).errors

    def close(self) -> None:
        """Stop the call workers; calls made afterwards fail with DONE_ERROR. Environments stay."""
        self._runner.close()

    # ------------------------------------------------------------------ steps

    def _steps(
        self, slot: _Slot, transition: str, steps: builtins.list[_StepWork], progress: _Progress,
        *, force: bool = False,
    ) -> None:
        """Run steps in order; a critical failure in a step that cancels (before_, leave_,
        CREATE steps) raises StepCancelled unless ``force``."""
        for step, work in steps:
            cancellable = not force and fsm.cancels_on_critical_failure(step)
            run_step(self._host, self._runner, slot.env, slot.plan, transition, step, work,
                     progress, cancellable=cancellable)

    def _leave(self, slot: _Slot, transition: str, state: str) -> None:
        self._host.fire("on_env_leave_state",
                        StateChangeEvent(slot.env.snapshot(), state, transition))

    def _enter(self, slot: _Slot, transition: str, state: str) -> None:
        now = time.time_ns()
        slot.env.set_state(state, now)
        self._host.fire("on_env_enter_state",
                        StateChangeEvent(slot.env.snapshot(), state, transition, now))
        self._fire_role(slot, now)

    def _fire_role(self, slot: _Slot, now: int) -> None:
        state = slot.env.state
        status = "INACTIVE" if state in (State.STANDBY, State.DONE) else "ACTIVE"
        self._host.fire("on_role_event", RoleEvent(slot.role, status, state, slot.role,
                                                   slot.env.id, now))

    # ------------------------------------------------------------------ runs (SOR / EOR)

    def _fire_run(self, env: Environment, transition: str, status: OpStatus, moment_ns: int,
                  error: str = "") -> None:
        assert env.run_number is not None
        self._host.fire("on_run_sor_eor", RunEvent(
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
        if not start:
            env.end_run()

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
        with self._slots_lock:
            self._slots.pop(slot.env.id, None)
