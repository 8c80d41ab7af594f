"""The simulated integrated services: every event named after the calling role, with a step,
its status and a JSON payload; trg's runn on every event; failures on request."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aliecs_integration_plugins.services import SERVICES, ServiceCallError

from aliecs_integration.records import (
    CallContext,
    CallTraits,
    EnvironmentSnapshot,
    IntegratedServiceEvent,
    OpStatus,
    PluginContext,
)


def call(service: str, operation: str, variables: dict[str, str],
         plugin: Any = None) -> list[IntegratedServiceEvent]:
    events: list[IntegratedServiceEvent] = []
    plugin = plugin or SERVICES[service](PluginContext(service, None))
    fn = plugin.register_call_functions()[operation]
    env = EnvironmentSnapshot("ENV", "CONFIGURED", variables={
        "detectors": '["ITS","TPC"]', "run_type": "PHYSICS", **variables})
    ctx = CallContext(env, f"{service}.{operation}()", "before_START_ACTIVITY", "",
                      CallTraits("before_START_ACTIVITY"), role_path=f"rd.{service}.x",
                      reporter=events.append)
    try:
        assert fn(ctx) == ""  # the reference's calls return nothing
    finally:
        for e in events:
            assert (e.service, e.environment_id, e.operation_name) == (
                service, "ENV", f"{service}.{operation}()")
            assert e.operation_step and e.operation_step_status is not OpStatus.NULL
            payload: Any = json.loads(e.payload)
            assert isinstance(payload, dict)
            assert e.payload == json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return events


def test_trg_ensure_run_stop_only_stops_a_started_run() -> None:
    trg = SERVICES["trg"](PluginContext("trg", None))
    assert call("trg", "EnsureRunStop", {}, trg) == []  # nothing started: no event
    call("trg", "RunStart", {"run_number": "3"}, trg)
    stop = call("trg", "EnsureRunStop", {"run_number": "3"}, trg)
    assert stop[-1].operation_step_status is OpStatus.DONE_OK
    assert call("trg", "EnsureRunStop", {}, trg) == []  # already stopped


def test_trg_run_number_on_every_event() -> None:
    events = call("trg", "RunStart", {"run_number": "42"})
    assert [(e.operation_status, e.operation_step, e.operation_step_status) for e in events] == [
        (OpStatus.STARTED, "perform TRG call: RunStart", OpStatus.STARTED),
        (OpStatus.DONE_OK, "perform TRG call: RunStart", OpStatus.DONE_OK)]
    assert {json.loads(e.payload)["trgRequest"]["runn"] for e in events} == {42}
    assert "trgResponse" in json.loads(events[-1].payload)
    assert {e.name for e in events} == {"rd.trg.x"}


def test_trg_failure_is_reported_and_fails_the_call() -> None:
    with pytest.raises(ServiceCallError, match="response code 3 from TRG: no config"):
        call("trg", "RunLoad", {"trg_fail_RunLoad": "no config", "last_run_number": "7"})


def test_dcs_one_event_per_detector_and_odc_state_change() -> None:
    events = call("dcs", "StartOfRun", {"run_number": "5"})
    per_detector = [json.loads(e.payload) for e in events
                    if e.operation_step == "perform DCS call: StartOfRun"
                    and e.operation_status is OpStatus.ONGOING]
    assert [(p["detector"], p["dcsEvent"]) for p in per_detector] == [
        ("ITS", "SOR_SUCCESS"), ("TPC", "SOR_SUCCESS")]
    assert all(json.loads(e.payload)["detectors"] == ["ITS", "TPC"] for e in events)
    odc = call("odc", "Start", {})
    changed = [e for e in odc if e.name == "odc.partitionStateChanged"]
    assert [json.loads(e.payload) for e in changed] == [{"state": "RUNNING"}]
