"""Legacy EnvInfo: state from trigger, variables → fields, runNumber/runType presence, bad input,
the cache of built messages."""

from __future__ import annotations

import pytest
from aliecs_integration_plugins.kafka.env_info import (
    EnvVariableError,
    build_env_info,
    carries_run,
    shared_env_info,
    state_from_trigger,
)

from aliecs_integration.pb import kafka_pb2


@pytest.mark.parametrize(
    ("trigger", "state"),
    [
        ("enter_STANDBY", "STANDBY"),
        ("enter_DEPLOYED", "DEPLOYED"),
        ("enter_CONFIGURED", "CONFIGURED"),
        ("enter_RUNNING", "RUNNING"),
        ("enter_ERROR", "ERROR"),
        ("enter_DONE", "DONE"),
        ("leave_RUNNING", "RUNNING"),
        ("leave_CONFIGURED", "CONFIGURED"),
        ("leave_STANDBY", "STANDBY"),
        ("after_START_ACTIVITY", "RUNNING"),
        ("before_STOP_ACTIVITY", "RUNNING"),
        ("before_START_ACTIVITY", "CONFIGURED"),
        ("after_STOP_ACTIVITY", "CONFIGURED"),
        ("DESTROY", "UNKNOWN"),
        ("after_DESTROY", "UNKNOWN"),
        ("before_CONFIGURE", "UNKNOWN"),
        ("after_DEPLOY", "UNKNOWN"),
        ("CREATE", "UNKNOWN"),
        ("enter_", "UNKNOWN"),
        ("", "UNKNOWN"),
    ],
)
def test_state_from_trigger(trigger: str, state: str) -> None:
    assert state_from_trigger(trigger) == state


def variables(**extra: str) -> dict[str, str]:
    base = {
        "environment_id": "2abcDEF",
        "enter_state_time_ms": "1700000000123",
        "detectors": '["TPC", "ITS"]',
        "run_number": "4242",
        "run_type": "PHYSICS",
    }
    base.update(extra)
    return base


def test_fields_from_variables() -> None:
    info = build_env_info(variables(), "enter_RUNNING")
    assert info.environmentId == "2abcDEF"
    assert info.state == "RUNNING"
    assert info.enterStateTimestamp == 1700000000123
    assert list(info.detectors) == ["TPC", "ITS"]  # order of the variable kept
    assert info.HasField("runNumber") and info.runNumber == 4242
    assert info.HasField("runType") and info.runType == "PHYSICS"


@pytest.mark.parametrize(
    ("trigger", "has_run"),
    [
        ("enter_RUNNING", True),
        ("leave_RUNNING", True),
        ("after_START_ACTIVITY", True),
        ("before_STOP_ACTIVITY", True),
        ("before_START_ACTIVITY", True),  # CONFIGURED, but the trigger mentions START_ACTIVITY
        ("enter_CONFIGURED", False),
        ("leave_CONFIGURED", False),
        ("after_STOP_ACTIVITY", False),
        ("enter_DEPLOYED", False),
        ("DESTROY", False),
    ],
)
def test_run_fields_presence(trigger: str, has_run: bool) -> None:
    info = build_env_info(variables(), trigger)
    assert carries_run(info.state, trigger) is has_run
    # The presence survives the wire.
    decoded = kafka_pb2.EnvInfo.FromString(info.SerializeToString())
    assert decoded.HasField("runNumber") is has_run
    assert decoded.HasField("runType") is has_run


def test_run_variables_not_needed_when_not_carried() -> None:
    v = variables()
    del v["run_number"], v["run_type"]
    info = build_env_info(v, "enter_CONFIGURED")
    assert not info.HasField("runNumber")
    v["run_number"] = "garbage"
    assert not build_env_info(v, "after_STOP_ACTIVITY").HasField("runNumber")


def test_empty_detectors_and_empty_run_type_are_valid() -> None:
    info = build_env_info(variables(detectors="[]", run_type=""), "enter_RUNNING")
    assert list(info.detectors) == []
    assert info.HasField("runType") and info.runType == ""


def test_uint32_bounds() -> None:
    assert build_env_info(variables(run_number="4294967295"), "enter_RUNNING").runNumber == (
        2**32 - 1
    )
    with pytest.raises(EnvVariableError, match="run_number"):
        build_env_info(variables(run_number="4294967296"), "enter_RUNNING")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("environment_id", None),
        ("environment_id", ""),
        ("enter_state_time_ms", None),
        ("enter_state_time_ms", "yesterday"),
        ("enter_state_time_ms", "-5"),
        ("enter_state_time_ms", "1.5"),
        ("detectors", None),
        ("detectors", "ITS,TPC"),
        ("detectors", '"ITS"'),
        ("detectors", "[1, 2]"),
        ("detectors", '{"ITS": 1}'),
        ("run_number", None),
        ("run_number", "abc"),
        ("run_number", "-1"),
        ("run_number", "+3"),
        ("run_number", "4294967296"),
        ("run_type", None),
    ],
)
def test_bad_variable_raises_naming_variable_value_and_env(name: str, value: str | None) -> None:
    v = variables()
    if value is None:
        del v[name]
    else:
        v[name] = value
    with pytest.raises(EnvVariableError) as info:
        build_env_info(v, "enter_RUNNING", fallback_id="fallback-id")
    err = info.value
    assert isinstance(err, ValueError)
    assert err.variable == name
    assert err.value == value
    text = str(err)
    assert f"'{name}'" in text
    if value:
        assert repr(value) in text
    else:
        assert "missing" in text or "''" in text
    expected_env = "fallback-id" if name == "environment_id" else "2abcDEF"
    assert err.environment_id == expected_env
    assert expected_env in text


# ---------------------------------------------------------------- the cache of built messages


@pytest.mark.parametrize(
    ("name", "value", "field", "expected"),
    [
        ("environment_id", "other", "environmentId", "other"),
        ("enter_state_time_ms", "1700000000999", "enterStateTimestamp", 1700000000999),
        ("detectors", '["MFT"]', "detectors", ["MFT"]),
        ("run_number", "4243", "runNumber", 4243),
        ("run_type", "COSMICS", "runType", "COSMICS"),
    ],
)
def test_a_changed_variable_gives_a_changed_message(
    name: str, value: str, field: str, expected: object
) -> None:
    before = build_env_info(variables(), "enter_RUNNING")
    after = build_env_info(variables(**{name: value}), "enter_RUNNING")
    got = getattr(after, field)
    assert (list(got) if field == "detectors" else got) == expected
    assert after != before
    assert build_env_info(variables(), "enter_RUNNING") == before  # and back


def test_same_inputs_share_one_cached_message_but_build_returns_copies() -> None:
    v = variables(environment_id="cache-env")
    shared = shared_env_info(v, "enter_RUNNING")
    # leave_S after enter_S: same state, same variables, nothing parsed again
    assert shared_env_info(dict(v), "leave_RUNNING") is shared
    assert shared_env_info(v, "enter_CONFIGURED") is not shared  # another state
    built = build_env_info(v, "enter_RUNNING")
    assert built == shared and built is not shared
    built.detectors.append("TOF")
    built.runNumber = 1
    assert build_env_info(v, "enter_RUNNING") == shared  # the change did not leak
    assert list(shared.detectors) == ["TPC", "ITS"] and shared.runNumber == 4242


def test_errors_are_not_cached() -> None:
    good = variables(environment_id="err-env")
    bad = variables(environment_id="err-env", detectors="[ITS")
    build_env_info(good, "enter_RUNNING")
    for _ in range(2):  # raised every time, with the JSON parser's error as the cause
        with pytest.raises(EnvVariableError, match="'detectors'") as info:
            build_env_info(bad, "enter_RUNNING")
        assert isinstance(info.value.__cause__, ValueError)
    with pytest.raises(EnvVariableError, match="'run_number'"):
        build_env_info(variables(environment_id="err-env", run_number="x"), "enter_RUNNING")
    assert build_env_info(good, "enter_RUNNING").runNumber == 4242
