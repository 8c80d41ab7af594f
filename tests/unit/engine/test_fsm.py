"""fsm: the transition table of docs/lifecycle.md, step names, trigger parsing."""

from __future__ import annotations

import itertools

import pytest

from aliecs_integration.engine import fsm
from aliecs_integration.engine.fsm import State
from aliecs_integration.errors import TransitionError

# docs/lifecycle.md's table, written out independently of the module under test.
SPEC = {
    ("DEPLOY", "STANDBY"): "DEPLOYED",
    ("CONFIGURE", "DEPLOYED"): "CONFIGURED",
    ("RESET", "CONFIGURED"): "DEPLOYED",
    ("START_ACTIVITY", "CONFIGURED"): "RUNNING",
    ("STOP_ACTIVITY", "RUNNING"): "CONFIGURED",
    ("EXIT", "CONFIGURED"): "DONE",
    ("EXIT", "DEPLOYED"): "DONE",
    ("EXIT", "STANDBY"): "DONE",
    ("GO_ERROR", "STANDBY"): "ERROR",
    ("GO_ERROR", "CONFIGURED"): "ERROR",
    ("GO_ERROR", "DEPLOYED"): "ERROR",
    ("GO_ERROR", "RUNNING"): "ERROR",
    ("RECOVER", "ERROR"): "DEPLOYED",
}
TRANSITION_NAMES = sorted({t for t, _ in SPEC})
STATES = ["PENDING", "STANDBY", "DEPLOYED", "CONFIGURED", "RUNNING", "ERROR", "DONE"]


def test_states_and_transitions_are_exactly_the_spec() -> None:
    assert [s.value for s in State] == STATES
    assert sorted(fsm.TRANSITIONS) == TRANSITION_NAMES
    table = {(t, s): target for t, (sources, target) in fsm.TRANSITIONS.items() for s in sources}
    assert table == SPEC


@pytest.mark.parametrize(("transition", "state"), sorted(SPEC))
def test_every_allowed_transition_leads_to_the_spec_state(transition: str, state: str) -> None:
    assert fsm.next_state("env1", transition, state) == SPEC[(transition, state)]
    assert transition in fsm.allowed_transitions(state)


REFUSED = [
    (t, s) for t, s in itertools.product([*TRANSITION_NAMES, "CREATE", "DESTROY", "BOGUS"], STATES)
    if (t, s) not in SPEC
]


@pytest.mark.parametrize(("transition", "state"), REFUSED)
def test_every_refused_transition_names_env_transition_state_and_allowed(
    transition: str, state: str
) -> None:
    with pytest.raises(TransitionError) as info:
        fsm.next_state("envXYZ", transition, state)
    text = str(info.value)
    assert "envXYZ" in text
    assert transition in text
    assert f"current state {state}" in text
    allowed = [t for t in TRANSITION_NAMES if (t, state) in SPEC]
    assert f"allowed transitions: {', '.join(fsm.allowed_transitions(state)) or 'none'}" in text
    assert sorted(fsm.allowed_transitions(state)) == allowed


def test_done_and_pending_allow_nothing() -> None:
    assert fsm.allowed_transitions("DONE") == ()
    assert fsm.allowed_transitions("PENDING") == ()


def test_create_and_destroy_point_to_the_manager() -> None:
    with pytest.raises(TransitionError, match=r"destroy\(\)"):
        fsm.next_state("e", "DESTROY", "RUNNING")


def test_step_names_in_order() -> None:
    assert fsm.step_names("CONFIGURE", "DEPLOYED", "CONFIGURED") == (
        "before_CONFIGURE", "leave_DEPLOYED", "tasks_CONFIGURE", "enter_CONFIGURED",
        "after_CONFIGURE")
    assert fsm.destroy_step_names("RUNNING") == (
        "before_DESTROY", "leave_RUNNING", "DESTROY", "after_DESTROY")
    assert fsm.CREATE_STEPS == ("before_CREATE", "CREATE")


@pytest.mark.parametrize(
    ("trigger", "expected"),
    [
        ("before_CONFIGURE", ("before_CONFIGURE", 0)),
        ("before_CONFIGURE+2", ("before_CONFIGURE", 2)),
        ("enter_CONFIGURED-666", ("enter_CONFIGURED", -666)),
        ("before_START_ACTIVITY+50", ("before_START_ACTIVITY", 50)),
        ("after_GO_ERROR+0", ("after_GO_ERROR", 0)),
        ("DESTROY", ("DESTROY", 0)),
        ("leave_DONE-1", ("leave_DONE", -1)),
        ("before_CREATE", ("before_CREATE", 0)),
        ("  CREATE+3 ", ("CREATE", 3)),
    ],
)
def test_parse_trigger(trigger: str, expected: tuple[str, int]) -> None:
    assert fsm.parse_trigger(trigger) == expected


@pytest.mark.parametrize(
    ("trigger", "message"),
    [
        ("", "malformed trigger ''"),
        ("before_CONFIGURE+", "malformed trigger"),
        ("before_CONFIGURE+2+3", "malformed trigger"),
        ("before_CONFIGURE 2", "malformed trigger"),
        ("before_CONFIGURE+x", "malformed trigger"),
        ("enter_CONFIGURE", "names no known step 'enter_CONFIGURE'"),
        ("before_CONFIGURED", "names no known step"),
        ("after_PENDING", "names no known step"),
        ("enter_PENDING", "names no known step"),
        ("during_CONFIGURE", "names no known step"),
    ],
)
def test_parse_trigger_rejects_malformed(trigger: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        fsm.parse_trigger(trigger)


@pytest.mark.parametrize(
    ("step", "cancels"),
    [
        ("before_CONFIGURE", True), ("leave_DEPLOYED", True), ("enter_CONFIGURED", False),
        ("after_CONFIGURE", False), ("before_CREATE", True), ("CREATE", True),
        ("before_DESTROY", True), ("DESTROY", False), ("after_DESTROY", False),
    ],
)
def test_which_steps_a_critical_failure_cancels(step: str, cancels: bool) -> None:
    assert fsm.cancels_on_critical_failure(step) is cancels
