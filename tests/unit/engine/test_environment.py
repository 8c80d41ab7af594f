"""Environment: ids, variable layers, managed variables, cached and consistent snapshots."""

from __future__ import annotations

import json
import re
import threading

import pytest

from aliecs_integration.engine.environment import (
    MANAGED_VARIABLES,
    Environment,
    new_environment_id,
)
from aliecs_integration.records import User, WorkflowTemplate


def make(**kwargs: object) -> Environment:
    return Environment("ENV1", **kwargs)  # type: ignore[arg-type]


def test_ids_are_short_and_unique() -> None:
    ids = {new_environment_id() for _ in range(2000)}
    assert len(ids) == 2000
    assert all(re.fullmatch(r"[A-Z2-7]{12}", i) for i in ids)


def test_variables_precedence_user_over_runtime_over_defaults_over_builtin() -> None:
    env = make(
        user_vars={"a": "user"},
        runtime_vars={"a": "runtime", "b": "runtime", "kafka_enabled": "true"},
        defaults={"a": "wf", "b": "wf", "c": "wf", "kafka_enabled": "false"},
    )
    variables = env.variables()
    assert (variables["a"], variables["b"], variables["c"]) == ("user", "runtime", "wf")
    assert variables["kafka_enabled"] == "true"
    assert make().get("kafka_enabled") is None  # no layer sets it
    plugin = {"kafka_enabled": "false", "p": "plugin"}
    assert make(plugin_defaults=plugin).get("kafka_enabled") == "false"
    assert make(plugin_defaults=plugin, defaults={"p": "wf"}).get("p") == "wf"
    assert make(user_vars={"kafka_enabled": "true"}, runtime_vars={"kafka_enabled": "false"}) \
        .get("kafka_enabled") == "true"


def test_managed_variables() -> None:
    env = make(detectors=["ITS", "TPC"], run_type="PHYSICS")
    variables = env.variables()
    assert variables["environment_id"] == "ENV1"
    assert json.loads(variables["detectors"]) == ["ITS", "TPC"]
    assert variables["run_type"] == "PHYSICS"
    assert "run_number" not in variables and "enter_state_time_ms" not in variables
    assert env.state == "PENDING"
    env.set_state("STANDBY", 1_700_000_000_123_456_789)
    assert env.get("enter_state_time_ms") == "1700000000123"
    assert env.state == "STANDBY"


@pytest.mark.parametrize("name", sorted(MANAGED_VARIABLES | {"__call_func"}))
def test_users_cannot_set_managed_variables(name: str) -> None:
    with pytest.raises(ValueError, match=f"'{name}' is set by the environment manager"):
        make(user_vars={name: "x"})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"user_vars": {"kafka_enabled": True}}, "'kafka_enabled': expected a string value"),
        ({"user_vars": {"": "x"}}, "non-empty strings"),
        ({"detectors": "ITS"}, "list of names, got the string 'ITS'"),
        ({"detectors": ["ITS", ""]}, "detector names must be non-empty"),
        ({"detectors": ["ITS", "TPC", "ITS"]}, "detectors listed twice: ITS"),
        ({"run_type": 3}, "run_type must be a string"),
    ],
)
def test_bad_input(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make(**kwargs)


def test_runs() -> None:
    env = make()
    env.set_time_var("run_end_time_ms", 5_000_000)
    env.set_time_var("run_start_completion_time_ms", 5_000_000)
    env.start_run(7, 9_000_000_000)
    assert env.run_number == 7
    assert env.get("run_number") == "7" and env.get("run_start_time_ms") == "9000"
    assert env.get("run_end_time_ms") is None  # older end/completion times cleared
    assert env.get("run_start_completion_time_ms") is None
    assert env.set_time_var("run_end_time_ms", 10_000_000_000, only_if_unset=True)
    assert not env.set_time_var("run_end_time_ms", 11_000_000_000, only_if_unset=True)
    assert env.get("run_end_time_ms") == "10000"
    env.end_run()
    assert env.run_number is None and env.get("run_number") is None
    assert env.get("last_run_number") == "7"


def test_snapshot_is_cached_until_a_change() -> None:
    user = User("alice", 1, 2)
    info = WorkflowTemplate("wf", "desc", "/p")
    env = make(detectors=["ITS"], run_type="COSMICS", workflow=info, user=user)
    snap = env.snapshot()
    assert env.snapshot() is snap
    assert (snap.id, snap.state, snap.detectors, snap.run_type, snap.run_number) == (
        "ENV1", "PENDING", ("ITS",), "COSMICS", None)
    assert snap.workflow == info and snap.last_request_user == user
    env.set_var("x", "1")
    snap2 = env.snapshot()
    assert snap2 is not snap and snap2.variables["x"] == "1" and "x" not in snap.variables
    with pytest.raises(TypeError):
        snap2.variables["x"] = "2"  # type: ignore[index]
    env.set_last_request_user(User("bob"))
    assert env.snapshot().last_request_user == User("bob")
    env.set_last_request_user(None)  # None keeps the last user
    assert env.snapshot().last_request_user == User("bob")


def test_snapshot_with_adds_call_variables_without_changing_the_environment() -> None:
    env = make()
    snap = env.snapshot_with({"__call_func": "a.B()"})
    assert snap.variables["__call_func"] == "a.B()"
    assert snap.variables["environment_id"] == "ENV1"
    assert "__call_func" not in env.variables()


def test_snapshots_stay_consistent_under_concurrent_changes() -> None:
    env = make()
    stop = threading.Event()
    bad: list[str] = []

    def writer() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            env.start_run(n, n * 1_000_000)
            env.end_run()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        for _ in range(20000):
            snap = env.snapshot()
            var = snap.variables.get("run_number")
            if (var is None) != (snap.run_number is None) or (
                var is not None and int(var) != snap.run_number
            ):
                bad.append(f"{snap.run_number} vs {var}")
    finally:
        stop.set()
        thread.join()
    assert bad == []


def test_live_defaults_apply_to_the_next_reads_below_user_variables() -> None:
    from aliecs_integration.engine.environment import Environment

    env = Environment("E1", user_vars={"mine": "user"}, runtime_vars={"kafka_enabled": "false",
                      "mine": "runtime"}, defaults={"wf": "1"}, plugin_defaults={"p": "0"})
    before = env.snapshot()
    env.set_defaults({"kafka_enabled": "true", "mine": "runtime2"}, {"p": "1", "q": "2"})
    after = env.variables()
    assert after["kafka_enabled"] == "true" and after["mine"] == "user"
    assert after["wf"] == "1" and after["p"] == "1" and after["q"] == "2"
    assert before.variables["kafka_enabled"] == "false"  # a snapshot taken before is kept
