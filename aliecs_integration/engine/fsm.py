"""The environment state machine: states, the transition table, step names and triggers.

Pure data and functions, no side effects. Every transition runs five steps (``before_<T>``,
``leave_<FROM>``, ``tasks_<T>``, ``enter_<TO>``, ``after_<T>``; calls attach to all but
``tasks_``); CREATE and DESTROY are operations outside the table, driven by the manager, with
their own step names (``docs/lifecycle.md``).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from types import MappingProxyType

from aliecs_integration.errors import TransitionNotAllowed


class State(enum.StrEnum):
    """FSM states; PENDING is the virtual state of an environment being created."""

    PENDING = "PENDING"
    STANDBY = "STANDBY"
    DEPLOYED = "DEPLOYED"
    CONFIGURED = "CONFIGURED"
    RUNNING = "RUNNING"
    ERROR = "ERROR"
    DONE = "DONE"


REAL_STATES: tuple[State, ...] = tuple(s for s in State if s is not State.PENDING)
"""The states of the machine itself (everything but PENDING), in declaration order."""

CREATE = "CREATE"
DESTROY = "DESTROY"
START_ACTIVITY = "START_ACTIVITY"
STOP_ACTIVITY = "STOP_ACTIVITY"
GO_ERROR = "GO_ERROR"

TRANSITIONS: Mapping[str, tuple[frozenset[State], State]] = MappingProxyType(
    {
        "DEPLOY": (frozenset({State.STANDBY}), State.DEPLOYED),
        "CONFIGURE": (frozenset({State.DEPLOYED}), State.CONFIGURED),
        "RESET": (frozenset({State.CONFIGURED}), State.DEPLOYED),
        START_ACTIVITY: (frozenset({State.CONFIGURED}), State.RUNNING),
        STOP_ACTIVITY: (frozenset({State.RUNNING}), State.CONFIGURED),
        "EXIT": (frozenset({State.CONFIGURED, State.DEPLOYED, State.STANDBY}), State.DONE),
        GO_ERROR: (
            frozenset({State.STANDBY, State.CONFIGURED, State.DEPLOYED, State.RUNNING}),
            State.ERROR,
        ),
        "RECOVER": (frozenset({State.ERROR}), State.DEPLOYED),
    }
)
"""transition name -> (states it is allowed from, state it leads to), as ``docs/lifecycle.md``."""

CREATE_STEPS: tuple[str, str] = ("before_CREATE", CREATE)
DESTROY_STEP_BEFORE = "before_DESTROY"
DESTROY_STEP_AFTER = "after_DESTROY"


def allowed_transitions(state: str) -> tuple[str, ...]:
    """The transitions allowed from ``state``, in table order (empty for DONE and PENDING)."""
    return tuple(name for name, (sources, _) in TRANSITIONS.items() if state in sources)


def next_state(environment_id: str, transition: str, current: str) -> State:
    """The state ``transition`` leads to from ``current``.

    Raises :class:`~aliecs_integration.errors.TransitionNotAllowed` (a ``TransitionError``)
    naming the environment, the transition and the current state
    and listing the allowed transitions when the transition is unknown or not allowed.
    """
    entry = TRANSITIONS.get(transition)
    if entry is None or current not in entry[0]:
        allowed = ", ".join(allowed_transitions(current)) or "none"
        if transition in (CREATE, DESTROY):
            why = (
                f"{transition} is not a state-machine transition "
                f"(use the manager's {transition.lower()}())"
            )
        elif entry is None:
            why = f"unknown transition {transition!r}"
        else:
            why = f"transition {transition} is not allowed from state {current}"
        raise TransitionNotAllowed(
            f"environment {environment_id}: {why}; current state {current}, "
            f"allowed transitions: {allowed}"
        )
    return entry[1]


def step_names(
    transition: str, from_state: str, to_state: str
) -> tuple[str, str, str, str, str]:
    """The five step names of a transition, in the order they run: ``before_X``, ``leave_S``,
    ``tasks_X`` (no call attaches there), ``enter_T``, ``after_X``."""
    key = (transition, from_state, to_state)
    names = _STEP_NAMES_OF.get(key)
    if names is None:
        names = (f"before_{transition}", f"leave_{from_state}", f"tasks_{transition}",
                 f"enter_{to_state}", f"after_{transition}")
        if len(_STEP_NAMES_OF) < 1024:  # bounded: transitions and states are a small set
            _STEP_NAMES_OF[key] = names
    return names


_STEP_NAMES_OF: dict[tuple[str, str, str], tuple[str, str, str, str, str]] = {}


def destroy_step_names(current: str) -> tuple[str, str, str, str]:
    """The four steps of DESTROY from ``current``: before_DESTROY, leave_<current>, DESTROY,
    after_DESTROY."""
    return (DESTROY_STEP_BEFORE, f"leave_{current}", DESTROY, DESTROY_STEP_AFTER)


def _all_step_names() -> frozenset[str]:
    names = set(CREATE_STEPS) | {DESTROY_STEP_BEFORE, DESTROY, DESTROY_STEP_AFTER}
    for transition in TRANSITIONS:
        names.update((f"before_{transition}", f"after_{transition}"))
    for state in REAL_STATES:
        names.update((f"leave_{state}", f"enter_{state}"))
    return frozenset(names)


STEP_NAMES: frozenset[str] = _all_step_names()
"""Every step name a trigger may name."""


def cancels_on_critical_failure(step: str) -> bool:
    """Whether a failing critical call in ``step`` cancels the operation.

    True for ``before_*`` and ``leave_*`` (nothing changed yet) and for the CREATE steps (the
    environment does not exist yet); False for ``enter_*``, ``after_*``, DESTROY and after_DESTROY.
    """
    cancels = _CANCELS.get(step)
    if cancels is None:
        cancels = step.startswith(("before_", "leave_", "tasks_")) or step == CREATE
    return cancels


_CANCELS = {step: step.startswith(("before_", "leave_", "tasks_")) or step == CREATE
            for step in STEP_NAMES | {f"tasks_{t}" for t in TRANSITIONS}}

_TRIGGER = re.compile(r"(?P<step>[A-Za-z_]+?)(?P<weight>[+-]\d+)?")


def parse_trigger(trigger: str) -> tuple[str, int]:
    """Split ``before_CONFIGURE+2`` into ``("before_CONFIGURE", 2)``; no suffix means weight 0.

    Raises ``ValueError`` naming the trigger when it is malformed or names no known step.
    """
    match = _TRIGGER.fullmatch(trigger.strip()) if isinstance(trigger, str) else None
    if match is None:
        raise ValueError(
            f"malformed trigger {trigger!r}: expected a step name with an optional signed "
            "integer weight, e.g. 'before_CONFIGURE', 'before_CONFIGURE+2', 'enter_CONFIGURED-666'"
        )
    step = match["step"]
    if step not in STEP_NAMES:
        raise ValueError(
            f"trigger {trigger!r} names no known step {step!r}: expected "
            f"before_/after_<TRANSITION> ({', '.join(TRANSITIONS)}), leave_/enter_<STATE> "
            f"({', '.join(REAL_STATES)}), before_CREATE, CREATE, before_DESTROY, DESTROY or "
            "after_DESTROY"
        )
    weight = match["weight"]
    return step, int(weight) if weight else 0
