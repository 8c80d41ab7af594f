"""Running a step and its workflow calls: calls are prepared per environment, run by weight
around the step's own work, announced with ``on_call`` events, and executed with a timeout on a
bounded pool of worker threads, or inline when marked
:func:`~aliecs_integration.plugin.nonblocking`.

Inline calls: a function marked nonblocking runs on the thread driving the environment (no thread
hand-off and back, the larger part of a short call's cost). It cannot be interrupted: its timeout is
checked when it returns, and an overrun is DONE_TIMEOUT (its output or error is discarded, its
side effects are done). Such a function must not drive its own environment (it would wait for
the environment's lock forever, where a worker-run call would time out).

The threads that run calls with a timeout are in :mod:`aliecs_integration.engine.call_runner`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol, TypeVar

import attrs

from aliecs_integration import hookspecs
from aliecs_integration.engine import fsm
from aliecs_integration.engine.call_runner import (
    CallOutcome,
    CallRunner,
    describe_exception,
)
from aliecs_integration.engine.environment import Environment
from aliecs_integration.engine.workflow import CallSpec, Workflow
from aliecs_integration.records import (
    CallContext,
    CallEvent,
    CallFunction,
    CallTraits,
    OpStatus,
    TransitionStepEvent,
)

log = logging.getLogger(__name__)

STEP_STARTING = "transition step starting"
STEP_FINISHED = "transition step finished"




E = TypeVar("E")


class Host(Protocol):
    """What calls and the manager need from :class:`aliecs_integration.host.PluginHost`."""

    def fire(self, hook: Callable[[E], None], event: E) -> Sequence[object]: ...

    def call_function(self, qualified_name: str) -> CallFunction | None: ...


@attrs.frozen
class PreparedCall:
    """A call with its traits and ``__call_*`` variables computed once per environment."""

    spec: CallSpec
    traits: CallTraits
    role_path: str
    timeout_s: float
    call_vars: Mapping[str, str]


_Calls = tuple[tuple[PreparedCall, ...], tuple[PreparedCall, ...]]


class CallPlan:
    """A workflow's calls prepared for its environments: ``at(step)`` gives (negative-weight,
    weight >= 0) calls in run order. ``__call_timeout`` and ``traits.timeout`` are written like
    Go durations (``30s``); ``__call_await`` is the trigger (calls are awaited in their step)."""

    def __init__(self, workflow: Workflow, default_timeout_s: float) -> None:
        self._by_step: dict[str, _Calls] = {}
        for step in fsm.STEP_NAMES:
            negative, positive = workflow.calls_at(step)
            if negative or positive:
                self._by_step[step] = (
                    tuple(_prepare(c, workflow.name, default_timeout_s) for c in negative),
                    tuple(_prepare(c, workflow.name, default_timeout_s) for c in positive),
                )

    def at(self, step: str) -> _Calls:
        return self._by_step.get(step, ((), ()))


def _prepare(spec: CallSpec, workflow_name: str, default_timeout_s: float) -> PreparedCall:
    timeout_s = spec.timeout if spec.timeout is not None else default_timeout_s
    timeout = f"{timeout_s:g}s"
    role_path = spec.role_path or workflow_name
    traits = CallTraits(trigger=spec.trigger, await_=spec.trigger, timeout=timeout,
                        critical=spec.critical)
    call_vars = {
        "__call_func": spec.func, "__call_trigger": spec.trigger, "__call_timeout": timeout,
        "__call_await": spec.trigger, "__call_critical": "true" if spec.critical else "false",
        "__call_rolepath": role_path,
    }
    return PreparedCall(spec, traits, role_path, timeout_s, call_vars)


def run_call(
    host: Host, runner: CallRunner, env: Environment, call: PreparedCall, step: str
) -> tuple[str, str] | None:
    """Run one call of ``env`` at ``step`` (the trigger without weight).

    Skipped silently (no event) when its ``enabled`` condition is false. Otherwise fires
    ``on_call`` STARTED, runs the function (an unknown function is DONE_ERROR with output
    ``{{<func>}}`` and the error "unknown function plugin.F: no loaded plugin exports it"),
    stores the output in the return variable on success, fires ``on_call``
    DONE_OK/DONE_ERROR/DONE_TIMEOUT. Returns None when it went well, else (the call's error, a
    description naming the call and trigger). Never raises.
    """
    spec = call.spec
    if not spec.condition(env.variables()):
        return None
    fire = host.fire
    fire(hookspecs.on_call, CallEvent(env.id, spec.func, OpStatus.STARTED, call.traits,
                              call.role_path, spec.return_var))
    fn = host.call_function(spec.qualified_name)
    if fn is None:
        outcome = CallOutcome(
            OpStatus.DONE_ERROR, output="{{" + spec.func + "}}",
            error=f"unknown function {spec.qualified_name}: no loaded plugin exports it",
        )
    else:
        context = CallContext(
            env.snapshot_with(call.call_vars), spec.func, step, spec.args, call.traits,
            role_path=call.role_path,
            reporter=lambda event: fire(hookspecs.on_integrated_service_event, event))
        outcome = runner.run(fn, context, call.timeout_s)
    ok = outcome.status is OpStatus.DONE_OK
    if ok and spec.return_var:
        env.set_var(spec.return_var, outcome.output)
    fire(hookspecs.on_call, CallEvent(env.id, spec.func, outcome.status, call.traits,
                              call.role_path, spec.return_var, outcome.output, outcome.error))
    if ok:
        return None
    kind = "critical call" if spec.critical else "call"
    return outcome.error, f"{kind} {spec.func} at {spec.trigger}: {outcome.status.name}: " \
        f"{outcome.error}"


class StepProgress:
    """Errors of one operation so far: all of them described (``errors``), and the critical
    ones (own-work failures count as critical) as the events state them (``critical``)."""

    __slots__ = ("critical", "errors")

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.critical: list[str] = []


class StepCancelled(Exception):
    """A cancellable step failed critically; ``error`` is the step's error text (as published),
    ``description`` names the failing call or step."""

    def __init__(self, step: str, error: str, description: str = "") -> None:
        super().__init__(error)
        self.step = step
        self.error = error
        self.description = description or error


def step_error(step: str, failures: Sequence[str]) -> str:
    """A step's error text: up to three failures joined with "; ", else a count."""
    if len(failures) > 3:
        return f"{len(failures)} critical hooks failed at trigger {step}"
    return "; ".join(failures)


def run_step(
    host: Host, runner: CallRunner, env: Environment, plan: CallPlan, transition: str, step: str,
    work: Callable[[], None] | None, progress: StepProgress, *, cancellable: bool,
    inherited_error: str = "",
) -> str:
    """Run one step: fire ``on_env_transition_step`` (``transition step starting``, ONGOING),
    run the negative-weight calls, ``work``, the weight >= 0 calls, fire it again (``transition
    step finished``: ONGOING, or DONE_ERROR with the step's error when a critical call or
    ``work`` failed, or when ``inherited_error`` is given). Returns the step's error ("" when
    none). Failures are appended to ``progress``; non-critical ones do not fail the step.

    When ``cancellable``, the first critical failure skips the rest of the step and raises
    :class:`StepCancelled` after the finished event.
    """
    fire = host.fire
    fire(hookspecs.on_env_transition_step, TransitionStepEvent(
        env.snapshot(), transition, step, OpStatus.ONGOING, False, STEP_STARTING))
    negative, positive = plan.at(step)
    failures: list[str] = []
    cancel = bool(negative) and _run_calls(
        host, runner, env, negative, step, failures, progress, cancellable)
    if not cancel and work is not None:
        try:
            work()
        except Exception as exc:
            error = f"{step} failed: {describe_exception(exc)}"
            log.error("environment %s: %s", env.id, error, exc_info=exc)
            failures.append(error)
            progress.errors.append(error)
            cancel = cancellable
    if not cancel and positive:
        cancel = _run_calls(host, runner, env, positive, step, failures, progress, cancellable)
    error = step_error(step, failures) if failures else ""
    if inherited_error:
        error = f"{inherited_error}; {error}" if error else inherited_error
    fire(hookspecs.on_env_transition_step, TransitionStepEvent(
        env.snapshot(), transition, step, OpStatus.DONE_ERROR if error else OpStatus.ONGOING,
        True, STEP_FINISHED, error))
    if failures:
        progress.critical += failures
    if cancel:
        raise StepCancelled(step, error, progress.errors[-1] if progress.errors else "")
    return error


def _run_calls(
    host: Host, runner: CallRunner, env: Environment, calls: tuple[PreparedCall, ...], step: str,
    failures: list[str], progress: StepProgress, cancellable: bool,
) -> bool:
    """Run ``calls``; returns True when a critical one failed and the step is cancellable."""
    for call in calls:
        failed = run_call(host, runner, env, call, step)
        if failed is None:
            continue
        error, description = failed
        progress.errors.append(description)
        if call.spec.critical:
            failures.append(error)
            if cancellable:
                return True
    return False
