"""Hook specifications: the markers and the specs, nothing else.

Every hook takes one keyword argument, ``event``, a frozen record from
:mod:`aliecs_integration.records`. The host calls each plugin's implementation separately: an
exception raised by one plugin is logged with the plugin's name and the other plugins still run.
Hooks run on the thread that drives the environment (environments run concurrently, so an
implementation must be thread-safe) and should return quickly: slow work belongs in a queue.
"""

from __future__ import annotations

from collections.abc import Mapping

import pluggy

from aliecs_integration.records import (
    CallEvent,
    CallFunction,
    CoreEvent,
    HostStartEvent,
    HostStopEvent,
    IntegratedServiceEvent,
    RoleEvent,
    RunEvent,
    StateChangeEvent,
    TaskEvent,
    TransitionStepEvent,
)

PROJECT_NAME = "aliecs_integration"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def on_host_start(event: HostStartEvent) -> None:
    """Fires once, after every enabled plugin was instantiated and before any environment exists.

    May raise: the failure is reported with the plugin's name; the other plugins still start.
    """


@hookspec
def on_host_stop(event: HostStopEvent) -> None:
    """Fires once at shutdown (also on SIGTERM). Flush and release within ``event.timeout_s``.

    May raise: the failure is reported; the other plugins are still stopped.
    """


@hookspec
def register_call_functions() -> Mapping[str, CallFunction]:
    """Return the functions workflow calls may name, by bare name: ``{"PublishX": fn}``.

    The host exposes them under the plugin's name: ``kafka.PublishEnterStateUpdate``. Called once
    at host start. May raise: the plugin then exports no function and the failure is reported.
    """
    raise NotImplementedError  # a spec has no body


@hookspec
def on_env_transition_step(event: TransitionStepEvent) -> None:
    """Fires for every environment event: when a transition step starts (``event.finished``
    False) and when it finishes, and for the events of the whole transition (empty
    ``event.step``: ``transition starting``, ``transition completed successfully``,
    ``transition error``, ``a critical error occurred, GO_ERROR transition imminent``).

    Order per step: started, then the step's calls and work, then finished (ONGOING, or
    DONE_ERROR with ``event.error``). CREATE and DESTROY publish their own sequences
    (``docs/events.md``); ``event.include_vars`` marks ``workflow loaded``.
    May raise: reported, never changes the transition.
    """


@hookspec
def on_env_enter_state(event: StateChangeEvent) -> None:
    """Fires in the ``enter_<STATE>`` step as its own work: after negative-weight calls, before
    weight-0 and positive-weight calls; the state changed at the end of ``tasks_<TRANSITION>``.

    May raise: reported, the state is not undone.
    """


@hookspec
def on_env_leave_state(event: StateChangeEvent) -> None:
    """Fires in the ``leave_<STATE>`` step as its own work: after negative-weight calls, before
    weight-0 and positive-weight calls; the state has not changed yet.

    May raise: reported, never cancels the transition.
    """


@hookspec
def on_call(event: CallEvent) -> None:
    """Fires when a workflow call starts (STARTED) and when it ends (DONE_OK/ERROR/TIMEOUT).

    May raise: reported, never changes the call's outcome.
    """


@hookspec
def on_integrated_service_event(event: IntegratedServiceEvent) -> None:
    """Fires for every operation status or sub-step reported by an integrated service.

    May raise: reported.
    """


@hookspec
def on_run_sor_eor(event: RunEvent) -> None:
    """Fires at Start of Run and End of Run moments (STARTED at before_, DONE_* at after_).

    See ``docs/lifecycle.md``: START_ACTIVITY, STOP_ACTIVITY, GO_ERROR while running, and
    TEARDOWN when a running environment is destroyed. May raise: reported, the run goes on.
    """


@hookspec
def on_task_event(event: TaskEvent) -> None:
    """Fires when a task changes state or status (in ``tasks_<TRANSITION>``, at DESTROY when
    tasks are released, or when a task fails). May raise: reported."""


@hookspec
def on_role_event(event: RoleEvent) -> None:
    """Fires when a role of an environment changes state or status; ``event.status`` or
    ``event.state`` is the value that changed (the other is empty). May raise: reported."""


@hookspec
def on_core_event(event: CoreEvent) -> None:
    """Fires for events of the core itself: core start, framework messages, heartbeats.

    May raise: reported.
    """
