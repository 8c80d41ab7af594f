"""Consumer conformance against the real broker: a scenario's topics are read back, decoded with
protobufjs (as ALICE Bookkeeping and the Control GUI decode them) and with Python, which must
agree field for field on every message, and each consumer's rules are applied:

- Bookkeeping: ``workflow loaded`` (the one event with ``vars``) creates the environment; every
  environment event has a state, a message and a timestampNano; runs get a start time from
  START_ACTIVITY and an end time from STOP_ACTIVITY or GO_ERROR (TEARDOWN ignored; a run torn
  down while RUNNING gets its end from the trigger's RunStop); ``trgRequest.runn`` is read from
  every trg event; trigger start/end from ``trg.RunStart()``/``trg.RunStop()`` DONE_OK.
- QC: Start of Run = START_ACTIVITY + CONFIGURED + STARTED; End of Run = STOP_ACTIVITY or
  TEARDOWN + RUNNING + STARTED (a GO_ERROR gives QC no End of Run, as in the reference).
- Control GUI: PENDING = deploying, CONFIGURED + ``transition completed successfully`` =
  deployed, ``cannot create new environment`` = failed; task names between ``tasks/`` and ``@``,
  a critical task in ERROR; ``readout-dataflow.dcs.sor`` with ``payload.dcsEvent``;
  ``odc.partitionStateChanged`` with ``payload.state``.
"""

from __future__ import annotations

import base64
import os
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from aliecs_integration.engine.run_numbers import RunNumberStore
from aliecs_integration.pb import events_pb2
from aliecs_integration.scenario.model import load_scenario
from aliecs_integration.scenario.session import run_scenario
from aliecs_integration.settings.core import Settings
from tests.conformance.consumers import REPO, Decoded, decode_all, decode_node, node_modules
from tests.conformance.consumers import payload as service_payload
from tests.kafka_helpers import existing_topics, read_topics

HERE = Path(__file__).resolve().parent
DEMO = REPO / "examples" / "scenario.yaml"
FAILURES = HERE / "scenarios" / "failures.yaml"


@pytest.fixture(scope="session")
def modules() -> str:
    """protobufjs in the cache (installed by dev/node-deps when missing)."""
    return node_modules()


@attrs.frozen
class Run:
    """What one scenario published, decoded, grouped for the consumers' rules."""

    root: str
    messages: list[Decoded]
    labels: dict[str, str]  # scenario label -> environment id
    failures: list[str]

    def topic(self, name: str) -> list[dict[str, Any]]:
        return [m.python for m in self.messages if m.topic == f"{self.root}.{name}"]

    def by_env(self, name: str, payload: str, field: str = "environmentId"
               ) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for event in self.topic(name):
            out[event[payload].get(field, "")].append(event)
        return out


def _run(path: Path, bootstrap: str, root: str, tmp: Path, modules: str) -> Run:
    settings = Settings.from_dict({
        "kafkaEndpoints": [bootstrap], "kafkaEndpoint": bootstrap,
        "integrationPlugins": ["kafka", "trg", "dcs", "odc"],
        "kafkaProducer": {"topicRoot": root, "topics": {"replicationFactor": 1}},
    }, source="conformance test", runtime_vars={"kafka_enabled": "true"})
    outcome = run_scenario(settings, load_scenario(path),
                           run_numbers=RunNumberStore(tmp / "run_number"), require_plugins=True)
    assert outcome.metrics is not None
    assert outcome.metrics.failed == outcome.metrics.dropped == 0
    topics = existing_topics(bootstrap, root + ".")
    read = read_topics(bootstrap, topics, outcome.metrics.sent)
    messages = [m for topic in sorted(read) for m in read[topic]]
    assert len(messages) == outcome.metrics.sent
    failures = [f"{p.label} {p.action}: {p.error}" for p in outcome.result.failures]
    return Run(root, decode_all(root, messages, modules), dict(outcome.result.environment_ids),
               failures)


@pytest.fixture(scope="module")
def demo(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory,
         modules: str) -> Iterator[Run]:
    root = f"aliecs.conf{base64.b32encode(os.urandom(5)).decode().lower()}"
    yield _run(DEMO, kafka_bootstrap, root, tmp_path_factory.mktemp("demo"), modules)


@pytest.fixture(scope="module")
def failures(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory,
             modules: str) -> Iterator[Run]:
    root = f"aliecs.conf{base64.b32encode(os.urandom(5)).decode().lower()}"
    yield _run(FAILURES, kafka_bootstrap, root, tmp_path_factory.mktemp("failures"), modules)


SCENARIOS = ["demo", "failures"]


def scenario_run(request: pytest.FixtureRequest, name: str) -> Run:
    run = request.getfixturevalue(name)
    assert isinstance(run, Run)
    return run


# ----------------------------------------------------------------------------- decoding


def test_protobufjs_check_catches_a_repeated_embedded_message(modules: str) -> None:
    """The reason for canonical encoding: a second occurrence of ``environmentEvent`` (a
    partial encoding appended) is merged by Python but replaces the first in protobufjs."""
    first = events_pb2.Event(environmentEvent=events_pb2.Ev_EnvironmentEvent(
        environmentId="E", message="transition starting"))
    value = first.SerializeToString() + events_pb2.Event(
        environmentEvent=events_pb2.Ev_EnvironmentEvent(state="STANDBY")).SerializeToString()
    [node] = decode_node([("events.Event", value)], modules)
    assert node == {"environmentEvent": {"state": "STANDBY"}}  # message and id lost
    python = events_pb2.Event.FromString(value).environmentEvent
    assert (python.environmentId, python.message, python.state) == (
        "E", "transition starting", "STANDBY")


@pytest.mark.parametrize("name", SCENARIOS)
def test_python_and_protobufjs_agree_on_every_message(
    request: pytest.FixtureRequest, name: str
) -> None:
    run = scenario_run(request, name)
    assert run.messages
    for m in run.messages:
        assert m.node == m.python, (m.topic, m.key)
        assert m.canonical, (m.topic, m.key)
    core = {m.topic.removeprefix(run.root + ".").split(".")[0] for m in run.messages}
    assert {"core", "environment", "task", "role", "call", "run",
            "integrated_service"} <= core


def test_bookkeeping_gets_the_user_who_started_the_run(demo: Run) -> None:
    alice = demo.labels["physics"]
    starts = [e["runEvent"] for e in demo.topic("run")
              if e["runEvent"]["environmentId"] == alice
              and e["runEvent"]["transition"] == "START_ACTIVITY"]
    assert starts and all(s["lastRequestUser"]["name"] == "alice" for s in starts)
    teardown = [e["runEvent"] for e in demo.topic("run")
                if e["runEvent"]["transition"] == "TEARDOWN"]
    assert teardown and all("lastRequestUser" not in t for t in teardown)


@pytest.mark.parametrize("name", SCENARIOS)
def test_integrated_service_events_carry_steps_and_json(
    request: pytest.FixtureRequest, name: str
) -> None:
    run = scenario_run(request, name)
    events = [m.python for m in run.messages
              if m.topic.startswith(f"{run.root}.integrated_service.")]
    assert events
    for event in events:
        s = event["integratedServiceEvent"]
        assert s["operationStep"] and s["operationStepStatus"] and s["name"], s
        assert isinstance(service_payload(event), dict)  # JSON on every event


def test_core_start_has_the_framework_id(demo: Run) -> None:
    [start] = demo.topic("core")
    assert len(start["coreStartEvent"]["frameworkId"]) == 36  # a UUID


# ----------------------------------------------------------------------------- Bookkeeping


@pytest.mark.parametrize("name", SCENARIOS)
def test_bookkeeping_environments(request: pytest.FixtureRequest, name: str) -> None:
    run = scenario_run(request, name)
    envs = run.by_env("environment", "environmentEvent")
    assert set(run.labels.values()) <= set(envs)
    for env_id, events in envs.items():
        created = [e["environmentEvent"] for e in events if e["environmentEvent"].get("vars")]
        if env_id not in run.labels.values():  # the broken template: no record created
            assert created == []
            continue
        assert [c["message"] for c in created] == ["workflow loaded"], env_id
        assert created[0]["vars"]["environment_id"] == env_id
        for event in events:
            assert event["environmentEvent"]["state"] and event["environmentEvent"]["message"]
            assert int(event["timestampNano"]) // 1_000_000 == int(event["timestamp"])


def _bookkeeping_runs(run: Run) -> dict[int, dict[str, Any]]:
    """Per run number: start/end times from aliecs.run, and the trigger's from aliecs.trg."""
    runs: dict[int, dict[str, Any]] = defaultdict(lambda: defaultdict(list))
    for event in run.topic("run"):
        r, ms = event["runEvent"], int(event["timestamp"])
        if r.get("transitionStatus") != "STARTED":
            continue
        if r["transition"] == "START_ACTIVITY":
            runs[r["runNumber"]]["start"].append(ms)
            runs[r["runNumber"]]["user"].append(r.get("lastRequestUser"))
        elif r["transition"] in ("STOP_ACTIVITY", "GO_ERROR"):
            runs[r["runNumber"]]["end"].append(ms)
        else:
            assert r["transition"] == "TEARDOWN"  # ignored by Bookkeeping
            runs[r["runNumber"]]["teardown"].append(ms)
    for event in run.topic("integrated_service.trg"):
        s = event["integratedServiceEvent"]
        runn = service_payload(event)["trgRequest"]["runn"]  # on every trg event
        assert isinstance(runn, int)
        if s.get("operationStepStatus") == "DONE_OK" and s["operationName"] == "trg.RunStart()":
            runs[runn]["trigger_start"].append(int(event["timestamp"]))
        if s.get("operationStepStatus") == "DONE_OK" and s["operationName"] in (
                "trg.RunStop()", "trg.EnsureRunStop()"):
            runs[runn]["trigger_end"].append(int(event["timestamp"]))
    return runs


@pytest.mark.parametrize("name", SCENARIOS)
def test_bookkeeping_runs_have_start_and_end_times(
    request: pytest.FixtureRequest, name: str
) -> None:
    run = scenario_run(request, name)
    runs = _bookkeeping_runs(run)
    assert runs and 0 not in runs
    for number, times in runs.items():
        assert len(times["start"]) == 1, (number, dict(times))
        if times["teardown"]:  # destroyed while RUNNING: the trigger's stop is the end
            assert not times["end"] and len(times["trigger_end"]) == 1, (number, dict(times))
            end = times["trigger_end"][0]
        else:
            assert len(times["end"]) == 1, (number, dict(times))
            end = times["end"][0]
        assert times["start"][0] <= end
        users = {u.get("name") for u in times["user"] if u}
        assert users <= {"alice"}, users  # Bookkeeping stores the run's lastRequestUser
        if times["trigger_start"]:
            assert len(times["trigger_start"]) == 1
            assert times["start"][0] <= times["trigger_start"][0] <= end


# ----------------------------------------------------------------------------- QC


@pytest.mark.parametrize("name", SCENARIOS)
def test_qc_sees_one_start_and_one_end_of_run(request: pytest.FixtureRequest, name: str) -> None:
    run = scenario_run(request, name)
    sor: dict[int, int] = defaultdict(int)
    eor: dict[int, int] = defaultdict(int)
    go_error: set[int] = set()
    for event in run.topic("run"):
        r = event["runEvent"]
        started = r.get("transitionStatus") == "STARTED"
        if r["transition"] == "START_ACTIVITY" and r["state"] == "CONFIGURED" and started:
            sor[r["runNumber"]] += 1
        if r["transition"] in ("STOP_ACTIVITY", "TEARDOWN") and r["state"] == "RUNNING" \
                and started:
            eor[r["runNumber"]] += 1
        if r["transition"] == "GO_ERROR":
            go_error.add(r["runNumber"])
    assert sor and set(sor.values()) == {1}
    for number in sor:
        assert eor[number] == (0 if number in go_error else 1), number
    assert set(eor) <= set(sor)


# ----------------------------------------------------------------------------- Control GUI


@pytest.mark.parametrize("name", SCENARIOS)
def test_gui_deploying_deployed_and_teardown(request: pytest.FixtureRequest, name: str) -> None:
    run = scenario_run(request, name)
    envs = run.by_env("environment", "environmentEvent")
    created = set(run.labels.values())
    for env_id, events in envs.items():
        e = [x["environmentEvent"] for x in events]
        assert e[0]["state"] == "PENDING"  # deploying
        if env_id not in created:  # the broken template
            assert e[-1]["message"] == "cannot create new environment"
            assert e[-1]["state"] == "ERROR" and "cannot load workflow template" in e[-1]["error"]
            continue
        assert any(x["state"] == "CONFIGURED"
                   and x["message"] == "transition completed successfully" for x in e), env_id
        last = e[-1]
        assert (last["message"], last["state"], last["transition"]) == (
            "environment teardown complete", "DONE", "DESTROY"), env_id
    assert len(envs) == len(created) + (1 if name == "failures" else 0)


@pytest.mark.parametrize("name", SCENARIOS)
def test_gui_tasks(request: pytest.FixtureRequest, name: str) -> None:
    run = scenario_run(request, name)
    tasks = run.topic("task")
    assert tasks
    for event in tasks:
        t = event["taskEvent"]
        assert t["taskid"] and t["hostname"] and t["state"] and t["status"]
        assert t["name"].split("tasks/", 1)[1].split("@", 1)[0]  # the GUI's task name
        released = (t["state"], t["status"]) == ("DONE", "INACTIVE")
        assert ("environmentId" in t) != released, t
    failed = [e["taskEvent"] for e in tasks if e["taskEvent"]["state"] == "ERROR"]
    if name == "failures":
        [critical] = failed
        assert critical["traits"]["critical"] is True
        assert critical["environmentId"] == run.labels["critical-task"]
    else:  # the demo's failing task is not critical
        assert [f.get("traits", {}).get("critical", False) for f in failed] == [False]


def test_gui_dcs_and_odc(demo: Run) -> None:
    sor = [e for e in demo.topic("integrated_service.dcs")
           if e["integratedServiceEvent"]["name"] == "readout-dataflow.dcs.sor"]
    events = {service_payload(e).get("dcsEvent") for e in sor}
    assert "SOR_SUCCESS" in events
    for event in demo.topic("integrated_service.dcs"):
        s = event["integratedServiceEvent"]
        assert s["operationStep"] and s["operationStepStatus"] and s["environmentId"]
        assert "detectors" in service_payload(event)
    changed = [e for e in demo.topic("integrated_service.odc")
               if e["integratedServiceEvent"]["name"] == "odc.partitionStateChanged"]
    assert {service_payload(e)["state"] for e in changed} >= {"READY", "RUNNING"}


def test_calls_name_their_role_and_unknown_functions(demo: Run) -> None:
    calls = [e["callEvent"] for e in demo.topic("call")]
    sor = [c for c in calls if c["func"] == "dcs.StartOfRun()"]
    assert sor and {c["path"] for c in sor} == {"readout-dataflow.dcs.sor"}
    assert all(c["traits"]["await"] == c["traits"]["trigger"] for c in calls)
    unknown = [c for c in calls if c["func"] == "nosuch.Call()" and
               c["callStatus"] == "DONE_ERROR"]
    assert unknown and unknown[0]["output"] == "{{nosuch.Call()}}"


def test_failure_sequences(failures: Run) -> None:
    envs = failures.by_env("environment", "environmentEvent")
    messages = {label: [(e["environmentEvent"].get("transition", ""),
                         e["environmentEvent"]["message"]) for e in envs[env_id]]
                for label, env_id in failures.labels.items()}
    refused = messages["refused"]
    i = refused.index(("START_ACTIVITY", "transition starting"))
    assert refused[i + 1] == ("START_ACTIVITY", "transition error")
    critical = messages["critical-task"]
    i = critical.index(("", "a critical error occurred, GO_ERROR transition imminent"))
    assert critical[i + 1] == ("GO_ERROR", "transition starting")
    assert failures.failures == [f for f in failures.failures if f.startswith("broken CREATE")]
    assert len(failures.failures) == 1
