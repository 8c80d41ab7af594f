"""Running a step and its workflow calls: calls are prepared per environment, run by weight
around the step's own work, announced with ``on_call`` events, and executed with a timeout on a
bounded pool of worker threads, or inline when marked
:func:`~aliecs_integration.plugin.nonblocking`.

Inline calls: a function marked nonblocking runs on the thread driving the environment (no thread
hand-off and back, the larger part of a short call's cost). It cannot be interrupted: its timeout is
checked when it returns, and an overrun is DONE_TIMEOUT (its output or error is discarded, its
side effects are done). Such a function must not drive its own environment (it would wait for
the environment's lock forever, where a worker-run call would time out).

Why not :class:`concurrent.futures.ThreadPoolExecutor`: its workers are joined at interpreter
exit, so one call that never returns would hang the process at shutdown. The workers here are
daemon threads; a call that exceeds its timeout is *abandoned*: the caller gets DONE_TIMEOUT at
once while the worker keeps running the function until it returns (Python cannot kill a thread).

Bounded pool: at most ``max_workers`` threads exist. Invariant: a thread is started whenever
more calls are in the pool (queued or running) than threads exist, up to the bound, so a queued
call never waits while a worker is idle. When every worker is busy with a hung call, new calls
wait in the queue; a call that does not *start* within its timeout is cancelled (it will never
run) and reported as DONE_TIMEOUT with the reason "all N call workers busy". Nothing deadlocks;
calls fail fast-ish until hung functions return.
"""

from __future__ import annotations

import _thread
import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

import attrs

from aliecs_integration.engine import fsm
from aliecs_integration.engine.environment import Environment
from aliecs_integration.engine.workflow import CallSpec, Workflow
from aliecs_integration.plugin import is_nonblocking
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

@attrs.frozen
class CallOutcome:
    """How one call ended: DONE_OK with ``output``, DONE_ERROR or DONE_TIMEOUT with ``error``."""

    status: OpStatus
    output: str = ""
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status is OpStatus.DONE_OK


def describe_exception(exc: BaseException) -> str:
    """``"ValueError: bad value"`` (or just the type name when the message is empty)."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


_PENDING, _RUNNING, _CANCELLED = 0, 1, 2


class _Work:
    """One submitted call; ``done`` is a lock held until the worker has a result."""

    __slots__ = ("context", "done", "error", "fn", "result", "state")

    def __init__(self, fn: CallFunction, context: CallContext) -> None:
        self.fn = fn
        self.context = context
        self.done = _thread.allocate_lock()
        self.done.acquire()
        self.state = _PENDING
        self.result: object = None
        self.error: BaseException | None = None


class CallRunner:
    """Runs ``fn(context)`` on a worker thread and waits at most ``timeout_s`` for it, or runs it
    inline on the calling thread when ``fn`` is marked nonblocking (see the module doc).

    Thread-safe. :meth:`close` stops idle workers; calls made after it return DONE_ERROR.
    The hand-off is a bare lock per call (cheaper than a ``Future``'s condition variable).
    """

    def __init__(self, max_workers: int = 16, *, thread_name: str = "aliecs-call") -> None:
        if max_workers < 1:
            raise ValueError(f"max_workers must be at least 1, got {max_workers}")
        self.max_workers = max_workers
        self._thread_name = thread_name
        self._queue: queue.SimpleQueue[_Work | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0
        self._in_pool = 0
        self._closed = False

    @property
    def threads(self) -> int:
        """Worker threads alive (idle, busy or running an abandoned call)."""
        return self._threads

    @property
    def in_pool(self) -> int:
        """Calls queued or running, abandoned ones included."""
        return self._in_pool

    def run(self, fn: CallFunction, context: CallContext, timeout_s: float) -> CallOutcome:
        """Run ``fn(context)``; never raises (a ``KeyboardInterrupt`` of the calling thread
        propagates).

        DONE_OK with the returned text ("" for None); DONE_ERROR with the exception as text;
        DONE_TIMEOUT when ``timeout_s`` passes first (the worker is abandoned, see module doc).
        A nonblocking ``fn`` runs inline: DONE_TIMEOUT when it returned after ``timeout_s``.
        """
        if is_nonblocking(fn):
            return self._run_inline(fn, context, timeout_s)
        work = _Work(fn, context)
        with self._lock:
            if self._closed:
                return CallOutcome(OpStatus.DONE_ERROR, error="call runner is closed")
            self._in_pool += 1
            if self._in_pool > self._threads and self._threads < self.max_workers:
                self._threads += 1
                threading.Thread(
                    target=self._serve, name=f"{self._thread_name}-{self._threads}", daemon=True
                ).start()
        self._queue.put(work)
        if not work.done.acquire(timeout=min(timeout_s, threading.TIMEOUT_MAX)):
            return self._timed_out(work, timeout_s)
        return _finished(work.result, work.error)

    def _run_inline(self, fn: CallFunction, context: CallContext, timeout_s: float) -> CallOutcome:
        if self._closed:
            return CallOutcome(OpStatus.DONE_ERROR, error="call runner is closed")
        result: object = None
        error: BaseException | None = None
        start = time.monotonic()
        try:
            result = fn(context)
        except KeyboardInterrupt:
            raise
        except Exception as exc:
            error = exc
        except BaseException as exc:  # SystemExit & co.: the call fails, the manager goes on
            error = RuntimeError(describe_exception(exc))
        overrun = time.monotonic() - start - timeout_s
        outcome = _finished(result, error)
        if overrun <= 0:
            return outcome
        text = (
            f"ran {overrun:.3f}s past its timeout of {timeout_s:g}s (nonblocking, run inline: "
            "not interrupted); "
            + (f"it failed too: {outcome.error}" if outcome.error else "its output is discarded")
        )
        log.warning("environment %s: call %s %s", context.environment.id, context.func, text)
        return CallOutcome(OpStatus.DONE_TIMEOUT, error=text)

    def _timed_out(self, work: _Work, timeout_s: float) -> CallOutcome:
        with self._lock:
            never_started = work.state == _PENDING
            if never_started:
                work.state = _CANCELLED
        context = work.context
        if never_started:
            error = (
                f"did not start within {timeout_s:g}s: all {self.max_workers} call workers are "
                "busy (abandoned calls still running); the call was cancelled"
            )
            log.error("environment %s: call %s %s", context.environment.id, context.func, error)
        else:
            error = (
                f"timed out after {timeout_s:g}s; the call was abandoned and keeps running in "
                "its worker until it returns"
            )
            log.warning("environment %s: call %s %s", context.environment.id, context.func, error)
        return CallOutcome(OpStatus.DONE_TIMEOUT, error=error)

    def _serve(self) -> None:
        while True:
            work = self._queue.get()
            if work is None:
                with self._lock:
                    self._threads -= 1
                return
            with self._lock:
                runs = work.state == _PENDING
                work.state = _RUNNING if runs else work.state
            try:
                if runs:
                    try:
                        work.result = work.fn(work.context)
                    except Exception as exc:
                        work.error = exc
                    except BaseException as exc:  # SystemExit & co. must not end the worker
                        work.error = RuntimeError(describe_exception(exc))
                    work.done.release()
            finally:
                with self._lock:
                    self._in_pool -= 1

    def close(self) -> None:
        """Refuse new calls and stop idle workers; busy ones end after their call returns."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            threads = self._threads
        for _ in range(threads):
            self._queue.put(None)


def _finished(result: object, error: BaseException | None) -> CallOutcome:
    """The outcome of a call function that returned ``result`` or raised ``error``."""
    if error is not None:
        return CallOutcome(OpStatus.DONE_ERROR, error=describe_exception(error))
    if result is not None and not isinstance(result, str):
        return CallOutcome(
            OpStatus.DONE_ERROR,
            error=f"call function returned {type(result).__name__}, expected str or None",
        )
    return CallOutcome(OpStatus.DONE_OK, output=result or "")


class Host(Protocol):
    """What calls and the manager need from :class:`aliecs_integration.host.PluginHost`."""

    def fire(self, hook_name: str, event: object) -> Sequence[object]: ...

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
) -> str | None:
    """Run one call of ``env`` at ``step`` (the trigger without weight).

    Skipped silently (no event) when its ``enabled`` condition is false. Otherwise fires
    ``on_call`` STARTED, runs the function (an unknown function is DONE_ERROR "unknown function
    plugin.F: no loaded plugin exports it"), stores the output in the return variable on
    success, fires ``on_call`` DONE_OK/DONE_ERROR/DONE_TIMEOUT. Returns None when it went well,
    else the error text for the step. Never raises.
    """
    spec = call.spec
    if not spec.condition(env.variables()):
        return None
    host.fire("on_call", CallEvent(env.id, spec.func, OpStatus.STARTED, call.traits,
                                   call.role_path, spec.return_var))
    fn = host.call_function(spec.qualified_name)
    if fn is None:
        outcome = CallOutcome(
            OpStatus.DONE_ERROR,
            error=f"unknown function {spec.qualified_name}: no loaded plugin exports it",
        )
    else:
        context = CallContext(env.snapshot_with(call.call_vars), spec.func, step, spec.args,
                              call.traits)
        outcome = runner.run(fn, context, call.timeout_s)
    if outcome.ok and spec.return_var:
        env.set_var(spec.return_var, outcome.output)
    host.fire("on_call", CallEvent(env.id, spec.func, outcome.status, call.traits,
                                   call.role_path, spec.return_var, outcome.output,
                                   outcome.error))
    if outcome.ok:
        return None
    kind = "critical call" if spec.critical else "call"
    return f"{kind} {spec.func} at {spec.trigger}: {outcome.status.name}: {outcome.error}"


class StepProgress:
    """Errors of one operation so far: all of them, and the critical ones (own-work failures
    count as critical)."""

    __slots__ = ("critical", "errors")

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.critical: list[str] = []


class StepCancelled(Exception):
    """A cancellable step failed critically; ``error`` says why."""

    def __init__(self, step: str, error: str) -> None:
        super().__init__(error)
        self.step = step
        self.error = error


def run_step(
    host: Host, runner: CallRunner, env: Environment, plan: CallPlan, transition: str, step: str,
    work: Callable[[], None] | None, progress: StepProgress, *, cancellable: bool,
) -> None:
    """Run one step: fire ``on_env_transition_step`` (started, ONGOING), run the negative-weight
    calls, ``work``, the weight >= 0 calls, fire it again (finished: ONGOING, or DONE_ERROR with
    the step's errors joined by "; "). Errors are appended to ``progress``.

    When ``cancellable``, the first critical failure (a critical call, or ``work`` raising) skips
    the rest of the step and raises :class:`StepCancelled` after the finished event; otherwise
    everything runs and nothing is raised.
    """
    fire = host.fire
    fire("on_env_transition_step", TransitionStepEvent(
        env.snapshot(), transition, step, OpStatus.ONGOING, False, STEP_STARTING))
    negative, positive = plan.at(step)
    errors: list[str] = []
    cancel = _run_calls(host, runner, env, negative, step, errors, progress, cancellable)
    if cancel is None and work is not None:
        try:
            work()
        except Exception as exc:
            error = f"{step} failed: {describe_exception(exc)}"
            log.error("environment %s: %s", env.id, error, exc_info=exc)
            errors.append(error)
            progress.critical.append(error)
            cancel = error if cancellable else None
    if cancel is None:
        cancel = _run_calls(host, runner, env, positive, step, errors, progress, cancellable)
    fire("on_env_transition_step", TransitionStepEvent(
        env.snapshot(), transition, step, OpStatus.DONE_ERROR if errors else OpStatus.ONGOING,
        True, STEP_FINISHED, "; ".join(errors)))
    progress.errors += errors
    if cancel is not None:
        raise StepCancelled(step, cancel)


def _run_calls(
    host: Host, runner: CallRunner, env: Environment, calls: tuple[PreparedCall, ...], step: str,
    errors: list[str], progress: StepProgress, cancellable: bool,
) -> str | None:
    for call in calls:
        error = run_call(host, runner, env, call, step)
        if error is None:
            continue
        errors.append(error)
        if call.spec.critical:
            progress.critical.append(error)
            if cancellable:
                return error
    return None
