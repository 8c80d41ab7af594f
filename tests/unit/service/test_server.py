"""The control API in-process with producing off (no broker): the service logic, statuses and
the Subscribe stream, without Kafka. The same against real servers is in
tests/integration/test_control_service.py."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from aliecs_integration.pb import events_pb2
from aliecs_integration.service.client import ControlClient, ControlError
from aliecs_integration.service.fanout import environment_of
from aliecs_integration.service.server import ControlServer, ServeError
from aliecs_integration.service.servicer import split_variables
from aliecs_integration.settings.core import Settings


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ControlServer]:
    settings = Settings.from_dict({"enableKafka": False}, source="test")
    srv = ControlServer(settings, address="127.0.0.1:0", run_numbers=tmp_path / "rn")
    srv.start()
    yield srv
    srv.shutdown(drain_timeout_s=5, flush_timeout_s=1, grace_s=0.5)


def client_of(srv: ControlServer) -> ControlClient:
    return ControlClient(f"127.0.0.1:{srv.port}", timeout_s=30)


def test_split_variables() -> None:
    assert split_variables({"detectors": '["ITS", "TPC"]', "run_type": "PHYSICS", "x": "1"}) == (
        ["ITS", "TPC"], "PHYSICS", {"x": "1"})
    assert split_variables({"detectors": "ITS, TPC"}) == (["ITS", "TPC"], "", {})
    assert split_variables({}) == ([], "", {})
    for bad, why in (('["ITS"', "malformed JSON list"), ("[1]", "expected a list of names"),
                     ("ITS,,TPC", "empty detector name")):
        with pytest.raises(ValueError, match=why):
            split_variables({"detectors": bad})


def test_lifecycle_statuses_and_subscribe_filter(server: ControlServer) -> None:
    with client_of(server) as client:
        ready_all, ready_one = threading.Event(), threading.Event()
        everything: list[bytes] = []
        stream = client.subscribe_raw("", ready_all)
        threading.Thread(target=lambda: everything.extend(stream), daemon=True).start()
        assert ready_all.wait(5)
        a = client.create("default", detectors=["ITS"], variables={"k": "v"}, user="bob")
        b = client.create("default", detectors=["TPC"])
        mine: list[bytes] = []
        stream_a = client.subscribe_raw(a.id, ready_one)
        threading.Thread(target=lambda: mine.extend(stream_a), daemon=True).start()
        assert ready_one.wait(5)
        for transition in ("START_ACTIVITY", "STOP_ACTIVITY"):
            client.control(a.id, transition)
            client.control(b.id, transition)
        client.destroy(a.id)
        client.destroy(b.id)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not (
            mine and events_pb2.Event.FromString(mine[-1]).environmentEvent.transitionStep
            == "after_DESTROY" and len(everything) > 0
        ):
            time.sleep(0.05)
        time.sleep(0.3)
        all_a = [v for v in everything if environment_of(v) == a.id]
        assert len(mine) > 20
        first = all_a.index(mine[0])
        assert all_a[first:] == mine  # the same events, the same order
        assert {environment_of(v) for v in mine} == {a.id}
        with pytest.raises(ControlError) as unknown:
            client.subscribe_raw("NOPE").__next__()
        assert unknown.value.code == grpc.StatusCode.NOT_FOUND
        assert unknown.value.exit_code == 2


def test_async_creation_announces_itself(server: ControlServer) -> None:
    with client_of(server) as client:
        ready = threading.Event()
        events: list[events_pb2.Event] = []
        stream = client.subscribe_raw("", ready)
        threading.Thread(target=lambda: events.extend(events_pb2.Event.FromString(v)
                                                      for v in stream), daemon=True).start()
        assert ready.wait(5)
        info = client.create("default", asynchronous=True, auto_transition=True)
        assert info.state == "STANDBY"
        deadline = time.monotonic() + 10
        while client.environment(info.id).environment.state != "RUNNING":
            assert time.monotonic() < deadline, "never reached RUNNING"
            time.sleep(0.05)
        def messages() -> list[str]:
            return [e.environmentEvent.message for e in list(events)
                    if e.environmentEvent.environmentId == info.id]

        while "created new environment" not in messages():  # the stream may lag the state
            assert time.monotonic() < deadline + 10, messages()
            time.sleep(0.05)
        created = next(e for e in events if e.environmentEvent.message == "created new environment")
        assert created.environmentEvent.state == "CONFIGURED"


def test_bad_requests_and_shutdown(server: ControlServer, tmp_path: Path) -> None:
    with client_of(server) as client:
        for call, code, text in (
            (lambda: client.create("nope"), grpc.StatusCode.INVALID_ARGUMENT,
             "unknown workflow template 'nope'; known templates: default"),
            (lambda: client.create(""), grpc.StatusCode.INVALID_ARGUMENT,
             "no workflowTemplate given"),
            (lambda: client.create("default", variables={"environment_id": "x"}),
             grpc.StatusCode.INVALID_ARGUMENT, "set by the environment manager"),
            (lambda: client.control("", "DEPLOY"), grpc.StatusCode.INVALID_ARGUMENT,
             "no environment id given"),
            (lambda: client.control("X", "JUMP"), grpc.StatusCode.INVALID_ARGUMENT,
             "unknown transition 'JUMP'"),
        ):
            with pytest.raises(ControlError) as failed:
                call()
            assert failed.value.code == code and text in str(failed.value)
        env_id = client.create("default").id
        second = ControlServer(server.settings, address="127.0.0.1:0",
                               run_numbers=server.run_number_store)
        with pytest.raises(ServeError, match="already uses the run-number store"):
            second.start()
        report = server.shutdown(drain_timeout_s=5, flush_timeout_s=1, grace_s=0.5)
        assert report.clean and report.unfinished == ()
        with pytest.raises(ControlError) as gone:
            client.control(env_id, "START_ACTIVITY")
        assert gone.value.code == grpc.StatusCode.UNAVAILABLE
        assert "cannot reach the control server" in str(gone.value)


def test_subscribe_streams_are_limited(tmp_path: Path) -> None:
    settings = Settings.from_dict({"enableKafka": False}, source="test")
    srv = ControlServer(settings, address="127.0.0.1:0", run_numbers=tmp_path / "rn", workers=9)
    srv.start()
    try:
        with client_of(srv) as client:
            ready = threading.Event()
            first = client.subscribe_raw("", ready)
            threading.Thread(target=lambda: list(first), daemon=True).start()
            assert ready.wait(5)
            with pytest.raises(ControlError) as refused:
                next(client.subscribe_raw(""))
            assert refused.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "1 Subscribe streams are open already" in str(refused.value)
    finally:
        assert srv.shutdown(drain_timeout_s=5, flush_timeout_s=1, grace_s=0.5).clean


def test_a_failed_creation_is_torn_down_and_announced(tmp_path: Path) -> None:
    wf = tmp_path / "wf"
    wf.mkdir()
    (wf / "broken.yaml").write_text(
        "name: broken\ncalls:\n  - {func: nosuch.Fail(), trigger: before_DEPLOY, critical: true}\n")
    settings = Settings.from_dict({"enableKafka": False}, source="test")
    srv = ControlServer(settings, address="127.0.0.1:0", run_numbers=tmp_path / "rn",
                        template_dirs=(wf,))
    srv.start()
    try:
        with client_of(srv) as client:
            ready = threading.Event()
            values: list[bytes] = []
            stream = client.subscribe_raw("", ready)
            threading.Thread(target=lambda: values.extend(stream), daemon=True).start()
            assert ready.wait(5)
            with pytest.raises(ControlError) as failed:
                client.create("broken", detectors=["ITS"])
            assert failed.value.code == grpc.StatusCode.ABORTED
            assert "transition DEPLOY cancelled" in str(failed.value)
            assert client.environments() == [] and client.active_detectors() == []
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and not any(
                    b"cannot create new environment" in v for v in values):
                time.sleep(0.05)
            last = events_pb2.Event.FromString(
                next(v for v in values if b"cannot create new environment" in v))
            assert last.environmentEvent.state == "ERROR"
            assert "unknown function nosuch.Fail" in last.environmentEvent.error
            assert last.environmentEvent.transitionStatus == events_pb2.NULL
            assert not last.environmentEvent.transition
    finally:
        srv.shutdown(drain_timeout_s=5, flush_timeout_s=1, grace_s=0.5)


def test_every_reply_with_a_timestamp_sets_it(server: ControlServer) -> None:
    from aliecs_integration.pb import o2control_pb2, o2control_pb2_grpc

    with client_of(server) as client:
        env_id = client.create("default").id
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    stub = o2control_pb2_grpc.ControlStub(channel)  # type: ignore[no-untyped-call]
    pb = o2control_pb2
    calls = {
        "GetFrameworkInfo": pb.GetFrameworkInfoRequest(),
        "GetEnvironments": pb.GetEnvironmentsRequest(),
        "GetEnvironment": pb.GetEnvironmentRequest(id=env_id),
        "ControlEnvironment": pb.ControlEnvironmentRequest(
            id=env_id, type=pb.ControlEnvironmentRequest.START_ACTIVITY),
        "GetActiveDetectors": pb.Empty(), "GetAvailableDetectors": pb.Empty(),
        "GetTasks": pb.GetTasksRequest(), "GetRoles": pb.GetRolesRequest(envId=env_id),
        "GetWorkflowTemplates": pb.GetWorkflowTemplatesRequest(),
        "GetIntegratedServices": pb.Empty(),
        "DestroyEnvironment": pb.DestroyEnvironmentRequest(id=env_id, force=True),
        "NewEnvironment": pb.NewEnvironmentRequest(workflowTemplate="default"),
        "NewEnvironmentAsync": pb.NewEnvironmentRequest(workflowTemplate="default"),
    }
    before = time.time_ns() // 1_000_000
    for method, request in calls.items():
        reply = getattr(stub, method)(request, timeout=30)
        assert reply.timestamp >= before, method
    channel.close()


def test_tasks_and_roles_come_from_the_manager(server: ControlServer) -> None:
    with client_of(server) as client:
        env_id = client.create("default", detectors=["ITS"]).id
        reply = client.environment(env_id, tree=True)
        info, root = reply.environment, reply.workflow
        tasks = client.tasks()
        assert tasks and info.numberOfTasks == len(tasks) == len(info.tasks)
        assert {t.state for t in tasks} == {"CONFIGURED"}
        assert info.numberOfActiveTasks == len(tasks) and info.numberOfInactiveTasks == 0

        def walk(role: Any) -> Iterator[Any]:
            yield role
            for child in role.roles:
                yield from walk(child)

        roles = list(walk(root))
        assert root.fullPath == info.rootRole and len(roles) > 1
        assert sorted(i for r in roles for i in r.taskIds) == sorted(t.taskId for t in tasks)
        assert root.vars["environment_id"] == env_id
        leaf = next(r for r in roles if r.taskIds)
        matching = client.roles(env_id)  # no pathSpec: the root with its tree
        assert [r.fullPath for r in matching] == [root.fullPath]
        from aliecs_integration.pb import o2control_pb2, o2control_pb2_grpc

        channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
        stub = o2control_pb2_grpc.ControlStub(channel)  # type: ignore[no-untyped-call]
        found = stub.GetRoles(o2control_pb2.GetRolesRequest(envId=env_id, pathSpec=leaf.fullPath),
                              timeout=10)
        assert [r.fullPath for r in found.roles] == [leaf.fullPath]
        channel.close()
        client.destroy(env_id)
        assert client.tasks() == []
