"""The legacy ``kafka.EnvInfo`` of one environment, built from its variables and the call trigger.

Rules (``docs/events.md``, legacy topics):

- the state comes from the trigger that fired the call (:func:`state_from_trigger`);
- ``environment_id``, ``enter_state_time_ms`` (ms, uint64) and ``detectors`` (a JSON array of
  strings) are always read; ``run_number`` (uint32) and ``run_type`` only when the state is
  RUNNING or the trigger mentions START_ACTIVITY (:func:`carries_run`), otherwise
  ``runNumber``/``runType`` stay unset (``HasField`` is False on the wire).

A missing or malformed variable raises :class:`EnvVariableError`; nothing is half-built.

Built messages are cached (bounded LRU) keyed by the raw text of the variables they are built
from, so a call whose inputs did not change (``leave_S`` after ``enter_S``) parses nothing; a
changed variable is a different key. Errors are never cached: a bad value raises every time.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping

from aliecs_integration.pb import kafka_pb2

RUNNING = "RUNNING"
CONFIGURED = "CONFIGURED"
UNKNOWN = "UNKNOWN"
START_ACTIVITY = "START_ACTIVITY"

ENVIRONMENT_ID = "environment_id"
ENTER_STATE_TIME_MS = "enter_state_time_ms"
DETECTORS = "detectors"
RUN_NUMBER = "run_number"
RUN_TYPE = "run_type"

UINT32_MAX = 2**32 - 1
UINT64_MAX = 2**64 - 1

_DIGITS = re.compile(r"[0-9]+")

_FIXED_TRIGGER_STATES: Mapping[str, str] = {
    "after_START_ACTIVITY": RUNNING,
    "before_STOP_ACTIVITY": RUNNING,
    "before_START_ACTIVITY": CONFIGURED,
    "after_STOP_ACTIVITY": CONFIGURED,
}


class EnvVariableError(ValueError):
    """An environment variable the legacy message needs is missing or malformed.

    ``variable`` is its name, ``value`` the raw text (None when missing), ``environment_id``
    the environment concerned (from the call context when the variable itself is missing).
    """

    def __init__(
        self, variable: str, value: str | None, environment_id: str, expected: str
    ) -> None:
        self.variable = variable
        self.value = value
        self.environment_id = environment_id
        got = "it is missing" if value is None else f"got {value!r}"
        super().__init__(
            f"environment {environment_id or '<unknown>'}: variable '{variable}': "
            f"expected {expected}, {got}"
        )


def state_from_trigger(trigger: str) -> str:
    """The state a call at ``trigger`` (a step name without weight) reports.

    ``enter_X``/``leave_X`` → X; ``after_START_ACTIVITY``/``before_STOP_ACTIVITY`` → RUNNING;
    ``before_START_ACTIVITY``/``after_STOP_ACTIVITY`` → CONFIGURED; anything else (e.g.
    ``DESTROY``) → UNKNOWN.
    """
    fixed = _FIXED_TRIGGER_STATES.get(trigger)
    if fixed is not None:
        return fixed
    for prefix in ("enter_", "leave_"):
        if trigger.startswith(prefix) and len(trigger) > len(prefix):
            return trigger[len(prefix) :]
    return UNKNOWN


def carries_run(state: str, trigger: str) -> bool:
    """True when ``runNumber``/``runType`` belong in the message.

    That is when the state is RUNNING or the trigger mentions START_ACTIVITY.
    """
    return state == RUNNING or START_ACTIVITY in trigger


@functools.lru_cache(maxsize=256)
def _trigger_facts(trigger: str) -> tuple[str, bool]:
    """(state, carries run fields) of a call at ``trigger``; triggers come from workflows."""
    state = state_from_trigger(trigger)
    return state, carries_run(state, trigger)


def _unsigned(
    raw: str | None, name: str, maximum: int, environment_id: str, what: str
) -> int:
    expected = f"{what} (decimal digits, at most {maximum})"
    if raw is None or not _DIGITS.fullmatch(raw.strip()):
        raise EnvVariableError(name, raw, environment_id, expected)
    value = int(raw.strip())
    if value > maximum:
        raise EnvVariableError(name, raw, environment_id, expected)
    return value


@functools.lru_cache(maxsize=256)
def _parsed_detectors(raw: str) -> tuple[str, ...] | None:
    """The detectors a ``detectors`` value lists; None when it is not a JSON array of strings."""
    try:
        parsed = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(parsed, list) or not all(isinstance(d, str) for d in parsed):
        return None
    return tuple(parsed)


def _detectors(raw: str | None, environment_id: str) -> tuple[str, ...]:
    expected = 'a JSON array of strings, e.g. ["ITS", "TPC"]'
    if raw is None:
        raise EnvVariableError(DETECTORS, raw, environment_id, expected)
    parsed = _parsed_detectors(raw)
    if parsed is None:
        try:  # the JSON parser's own message, as the cause
            json.loads(raw)
        except ValueError as exc:
            raise EnvVariableError(DETECTORS, raw, environment_id, expected) from exc
        raise EnvVariableError(DETECTORS, raw, environment_id, expected)
    return parsed


def build_env_info(
    variables: Mapping[str, str], trigger: str, fallback_id: str = ""
) -> kafka_pb2.EnvInfo:
    """Build the ``EnvInfo`` for a call fired at ``trigger`` from the environment's ``variables``.

    ``fallback_id`` (the environment id known to the caller) only names the environment in the
    error when ``environment_id`` itself is missing. Raises :class:`EnvVariableError`. Returns a
    new message the caller may change (see :func:`shared_env_info` for the cached one).
    """
    info = kafka_pb2.EnvInfo()
    info.CopyFrom(shared_env_info(variables, trigger, fallback_id))
    return info


def shared_env_info(
    variables: Mapping[str, str], trigger: str, fallback_id: str = ""
) -> kafka_pb2.EnvInfo:
    """Like :func:`build_env_info`, but returns the cached message itself: shared between
    callers and threads, it must not be changed (copy it, e.g. into another message, to use)."""
    environment_id = variables.get(ENVIRONMENT_ID)
    if environment_id is None or not environment_id.strip():
        raise EnvVariableError(ENVIRONMENT_ID, environment_id, fallback_id, "a non-empty id")
    state, carries = _trigger_facts(trigger)
    return _built(
        environment_id, state, variables.get(ENTER_STATE_TIME_MS), variables.get(DETECTORS),
        carries, variables.get(RUN_NUMBER) if carries else None,
        variables.get(RUN_TYPE) if carries else None,
    )


@functools.lru_cache(maxsize=1024)
def _built(
    environment_id: str, state: str, enter_raw: str | None, detectors_raw: str | None,
    carries: bool, run_number_raw: str | None, run_type: str | None,
) -> kafka_pb2.EnvInfo:
    """The message for these raw inputs (checked in the order the fields are listed)."""
    enter_ms = _unsigned(
        enter_raw, ENTER_STATE_TIME_MS, UINT64_MAX, environment_id, "ms since epoch"
    )
    info = kafka_pb2.EnvInfo(
        environmentId=environment_id,
        state=state,
        detectors=_detectors(detectors_raw, environment_id),
        enterStateTimestamp=enter_ms,
    )
    if carries:
        info.runNumber = _unsigned(
            run_number_raw, RUN_NUMBER, UINT32_MAX, environment_id, "a run number"
        )
        if run_type is None:
            raise EnvVariableError(RUN_TYPE, None, environment_id, "a run type, e.g. PHYSICS")
        info.runType = run_type
    return info
