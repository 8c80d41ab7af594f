"""Running a :class:`~aliecs_integration.scenario.model.Scenario` against an environment manager.

One thread per environment, actions of one environment in order; a progress callback hears of
every action as soon as it is done. Outcomes (expected or not) are returned, never raised.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import attrs

from aliecs_integration.engine import fsm
from aliecs_integration.engine.workflow import TemplateRef, Workflow
from aliecs_integration.errors import AliecsError
from aliecs_integration.records import EnvironmentSnapshot, OpStatus, User
from aliecs_integration.scenario.model import (
    Destroy,
    EnvironmentPlan,
    FailTask,
    Scenario,
    ServiceOperation,
    Sleep,
    Step,
)

log = logging.getLogger(__name__)


class Manager(Protocol):
    """What the runner needs from :class:`aliecs_integration.engine.manager.EnvironmentManager`."""

    def create(
        self, workflow: Workflow | TemplateRef | None = None, *, detectors: Any = (),
        run_type: str = "", variables: Mapping[str, str] | None = None, user: Any = None,
    ) -> EnvironmentSnapshot: ...

    def transition(self, env_id: str, name: str, *, user: Any = None) -> EnvironmentSnapshot: ...

    def destroy(
        self, env_id: str, *, user: Any = None, force: bool = False
    ) -> EnvironmentSnapshot: ...

    def report_integrated_service_event(
        self, env_id: str, service: str, operation_name: str, status: OpStatus, *,
        step: str = "", step_status: OpStatus = OpStatus.NULL, error: str = "",
        payload: str = "", name: str = "",
    ) -> None: ...

    def last_errors(self, env_id: str) -> tuple[str, ...]: ...

    def fail_task(self, env_id: str, role_path: str) -> EnvironmentSnapshot: ...


CREATE_INDEX = -1
"""``Progress.index`` of the creation of an environment (before its first action)."""


@attrs.frozen
class Progress:
    """What happened to one environment at one action, reported as soon as it is done.

    ``ok``: the action succeeded; ``as_expected``: ``ok`` unless the action was marked
    ``expect: error``. ``run_number`` is the run active afterwards, ``ended_run`` the run the
    action ended. ``error`` is why the action failed; ``notes`` are errors the manager reported
    without failing the action (a failing non-critical call), or the status of a service
    operation.
    """

    label: str
    environment_id: str
    index: int
    action: str
    state: str
    ok: bool
    as_expected: bool
    run_number: int | None = None
    ended_run: int | None = None
    error: str = ""
    notes: tuple[str, ...] = ()
    elapsed_s: float = 0.0


@attrs.frozen
class ScenarioResult:
    progress: tuple[Progress, ...]
    environment_ids: Mapping[str, str]

    @property
    def failures(self) -> list[Progress]:
        """Actions whose outcome was not the expected one."""
        return [p for p in self.progress if not p.as_expected]

    def run_numbers(self) -> list[int]:
        """Every run number allocated, in order of allocation."""
        return sorted({p.run_number for p in self.progress if p.run_number is not None})


ProgressCallback = Callable[[Progress], None]


class ScenarioRunner:
    """Drives ``manager`` through a :class:`Scenario`, one thread per environment.

    ``on_progress`` is called (serialised by a lock, from the environment's thread) after each
    action. An action that does not go as expected ends its environment's actions; the
    environment, if it still exists, is then destroyed (forced) so nothing is left behind.
    :meth:`run` never raises because of an action: outcomes are in the result. When :meth:`run`
    is interrupted (SIGTERM, Ctrl-C), the environment threads stop before their next action
    (a ``sleep`` action is cut short) and are joined, up to ``stop_timeout_s``, before the
    interruption propagates: nothing transitions after the caller goes on to stop the plugins.
    """

    def __init__(
        self, manager: Manager, *, on_progress: ProgressCallback | None = None,
        sleep: Callable[[float], None] | None = None, stop_timeout_s: float = 10.0,
    ) -> None:
        self._manager = manager
        self._on_progress = on_progress
        self._stopping = threading.Event()
        self._sleep = sleep if sleep is not None else self._interruptible_sleep
        self._stop_timeout_s = stop_timeout_s
        self._lock = threading.Lock()
        self._progress: list[Progress] = []
        self._ids: dict[str, str] = {}

    def run(self, scenario: Scenario) -> ScenarioResult:
        """Run every environment in parallel; return when all are done."""
        self._progress, self._ids = [], {}
        threads = [
            threading.Thread(target=self._guarded, args=(plan,), name=f"scenario-{plan.label}",
                             daemon=True)
            for plan in scenario.environments
        ]
        self._stopping.clear()
        for thread in threads:
            thread.start()
        try:
            for thread in threads:
                thread.join()
        except BaseException:  # interrupted: stop the environments before anything else
            self.stop(threads)
            raise
        return ScenarioResult(tuple(self._progress), dict(self._ids))

    @property
    def stopping(self) -> bool:
        """True once :meth:`run` was interrupted: environment threads start no new action."""
        return self._stopping.is_set()

    def _interruptible_sleep(self, seconds: float) -> None:
        self._stopping.wait(seconds)

    def stop(self, threads: Sequence[threading.Thread]) -> None:
        """Ask the environment threads to stop and join them within ``stop_timeout_s``."""
        self._stopping.set()
        deadline = time.monotonic() + self._stop_timeout_s
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        alive = [t.name for t in threads if t.is_alive()]
        if alive:
            log.warning("scenario: %d environment thread(s) still inside a transition after "
                        "%.0f s: %s", len(alive), self._stop_timeout_s, ", ".join(alive))

    def _report(self, progress: Progress) -> None:
        with self._lock:
            self._progress.append(progress)
            if self._on_progress is not None:
                try:
                    self._on_progress(progress)
                except Exception:
                    log.exception("scenario progress callback failed")

    def _guarded(self, plan: EnvironmentPlan) -> None:
        try:
            _EnvironmentRun(self, plan).run()
        except Exception as exc:  # a bug, not an action outcome: keep the other threads going
            log.debug("scenario environment %s crashed", plan.label, exc_info=exc)
            self._report(Progress(plan.label, self._ids.get(plan.label, ""), CREATE_INDEX,
                                  "scenario", "?", False, False,
                                  error=f"unexpected {type(exc).__name__}: {exc}"))


def _describe(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


class _EnvironmentRun:
    """One environment's thread: create, the actions in order, cleanup after a failure."""

    def __init__(self, runner: ScenarioRunner, plan: EnvironmentPlan) -> None:
        self.runner, self.plan = runner, plan
        self.manager = runner._manager
        self.env_id = ""
        self.state: str = fsm.State.PENDING
        self.run_number: int | None = None
        self.alive = False
        self.user = User(plan.user) if plan.user else None

    def report(self, index: int, action: str, *, ok: bool, expected_error: bool = False,
               error: str = "", notes: Sequence[str] = (), ended: int | None = None,
               started: float) -> bool:
        as_expected = ok != expected_error
        self.runner._report(Progress(
            self.plan.label, self.env_id, index, action, self.state, ok, as_expected,
            self.run_number, ended, error, tuple(notes), time.monotonic() - started))
        return as_expected

    def notes(self, error: str = "") -> list[str]:
        try:
            found = self.manager.last_errors(self.env_id)
        except AliecsError:
            return []
        return [n for n in found if n not in error]

    def track(self, snapshot: EnvironmentSnapshot) -> int | None:
        """Take the state and run number from ``snapshot``; returns the run that ended."""
        before = self.run_number
        self.state, self.run_number = snapshot.state, snapshot.run_number
        return before if before is not None and snapshot.run_number is None else None

    def run(self) -> None:
        plan, started = self.plan, time.monotonic()
        try:
            snapshot = self.manager.create(plan.workflow, detectors=plan.detectors, user=self.user,
                                           run_type=plan.run_type, variables=plan.variables)
        except (AliecsError, ValueError) as exc:
            self.report(CREATE_INDEX, "CREATE", ok=False, error=_describe(exc), started=started)
            return
        self.env_id, self.alive = snapshot.id, True
        with self.runner._lock:
            self.runner._ids[plan.label] = snapshot.id
        self.track(snapshot)
        self.report(CREATE_INDEX, "CREATE", ok=True, notes=self.notes(), started=started)
        for step in plan.steps:
            if self.runner.stopping:
                return
            if not self.perform(step):
                if not self.runner.stopping:
                    self.cleanup()
                return

    def perform(self, step: Step) -> bool:
        started = time.monotonic()
        action = step.action
        if isinstance(action, Sleep):
            self.runner._sleep(action.seconds)
            return self.report(step.index, action.describe(), ok=True, started=started)
        if isinstance(action, ServiceOperation):
            return self.service(step.index, action, started)
        ended = None
        try:
            if isinstance(action, Destroy):
                snapshot = self.manager.destroy(self.env_id, user=self.user)
                self.alive = False
                self.state = "DESTROYED"
                ended, self.run_number = self.run_number, None
                notes: list[str] = []
            elif isinstance(action, FailTask):
                snapshot = self.manager.fail_task(self.env_id, action.role_path)
                ended = self.track(snapshot)
                notes = [f"state {snapshot.state}"]
            else:
                snapshot = self.manager.transition(self.env_id, action.name, user=self.user)
                ended = self.track(snapshot)
                notes = self.notes()
        except (AliecsError, ValueError) as exc:
            error = _describe(exc)
            return self.report(step.index, action.describe(), ok=False,
                               expected_error=step.expect_error, error=error,
                               notes=self.notes(error), started=started)
        return self.report(step.index, action.describe(), ok=True,
                           expected_error=step.expect_error, notes=notes, ended=ended,
                           started=started)

    def service(self, index: int, op: ServiceOperation, started: float) -> bool:
        """STARTED, one ONGOING per step, then the final status; every event carries a step
        and its status (the first step, or the operation, on the first and last events) and
        the payload."""
        report = self.manager.report_integrated_service_event
        first = op.steps[0].step if op.steps else op.operation
        last = op.steps[-1].step if op.steps else op.operation
        try:
            report(self.env_id, op.service, op.operation, OpStatus.STARTED, step=first,
                   step_status=OpStatus.STARTED, payload=op.payload)
            for sub in op.steps:
                report(self.env_id, op.service, op.operation, OpStatus.ONGOING, step=sub.step,
                       step_status=sub.status, payload=op.payload)
            report(self.env_id, op.service, op.operation, op.status, error=op.error,
                   step=last, step_status=op.status, payload=op.payload)
        except (AliecsError, ValueError) as exc:
            return self.report(index, op.describe(), ok=False, error=_describe(exc),
                               started=started)
        steps = f" after {len(op.steps)} step(s)" if op.steps else ""
        outcome = f"{op.status.name}{steps}" + (f": {op.error}" if op.error else "")
        return self.report(index, op.describe(), ok=True, notes=[outcome], started=started)

    def cleanup(self) -> None:
        """After an unexpected outcome: destroy the environment (forced) if it still exists."""
        if not self.alive:
            return
        started = time.monotonic()
        try:
            self.manager.destroy(self.env_id, force=True)
        except (AliecsError, ValueError) as exc:
            self.report(len(self.plan.steps), "DESTROY (cleanup)", ok=False,
                        error=_describe(exc), started=started)
            return
        self.alive, self.state = False, "DESTROYED"
        self.report(len(self.plan.steps), "DESTROY (cleanup)", ok=True, started=started)
