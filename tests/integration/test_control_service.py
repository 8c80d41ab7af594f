"""The control API against a running ``aliecs-integration serve`` (a real process, settings from
the real Consul, events on the real Kafka), driven through gRPC."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml

from aliecs_integration.pb import events_pb2, o2control_pb2
from aliecs_integration.service.client import ControlClient, ControlError, wait_for_server
from aliecs_integration.service.fanout import environment_of
from aliecs_integration.settings.sources import push_to_consul
from tests.kafka_helpers import existing_topics, read_topics

REPO = Path(__file__).resolve().parents[2]
SLOW_WORKFLOW = {
    "name": "slow",
    "description": "CONFIGURE takes a while",
    "calls": [{"func": "slow.Sleep(2.5)", "trigger": "before_CONFIGURE", "timeout": "20s",
               "critical": True}],
}
PAYLOAD_TOPIC = {"environmentEvent": "environment", "runEvent": "run", "callEvent": "call",
                 "roleEvent": "role", "taskEvent": "task"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Serve:
    """One ``serve`` process (with the test-only ``slow`` plugin)."""

    def __init__(self, settings: str, workdir: Path, run_numbers: Path) -> None:
        self.address = f"127.0.0.1:{free_port()}"
        self.log = workdir / f"serve-{self.address.rsplit(':', 1)[1]}.log"
        self.args = [sys.executable, "-m", "tests.integration.serve_with_slow_plugin", "serve",
                     "--settings", settings, "--address", self.address,
                     "--run-numbers", str(run_numbers), "--workflows", str(workdir / "wf"),
                     "--drain-timeout", "30", "--metrics-address", "127.0.0.1:0"]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *, wait: bool = True) -> Serve:
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(self.args, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
        if wait:
            wait_for_server(self.address, timeout_s=60)
        return self

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def terminate(self, timeout: float = 60) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def client(self) -> ControlClient:
        return ControlClient(self.address, timeout_s=60)


@pytest.fixture
def serve_factory(
    consul_address: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path,
) -> Iterator[Callable[[], Serve]]:
    settings = tmp_path / "settings.yaml"
    settings.write_text(yaml.safe_dump({
        "kafkaEndpoints": [kafka_bootstrap],
        "kafkaProducer": {"topicRoot": topic_prefix, "topics": {"replicationFactor": 1}},
    }))
    key = f"{topic_prefix}/components/settings"
    push_to_consul(consul_address, settings, settings_key=key)
    (tmp_path / "wf").mkdir()
    (tmp_path / "wf" / "slow.yaml").write_text(yaml.safe_dump(SLOW_WORKFLOW))
    started: list[Serve] = []

    def make() -> Serve:
        serve = Serve(f"consul://{consul_address}/{key}", tmp_path, tmp_path / "run_number")
        started.append(serve)
        return serve

    yield make
    for serve in started:
        if serve.proc is not None and serve.proc.poll() is None:
            serve.proc.kill()
            serve.proc.wait(10)
    _delete_topics(kafka_bootstrap, topic_prefix)


def _delete_topics(bootstrap: str, prefix: str) -> None:
    from confluent_kafka.admin import AdminClient

    topics = existing_topics(bootstrap, prefix)
    if topics:
        admin = AdminClient({"bootstrap.servers": bootstrap})
        for future in admin.delete_topics(topics, operation_timeout=30).values():
            future.result()


class Collector:
    """Receives a Subscribe stream in a thread."""

    def __init__(self, client: ControlClient, env_id: str = "") -> None:
        self.values: list[bytes] = []
        self.error: BaseException | None = None
        ready = threading.Event()
        self._stream = client.subscribe_raw(env_id, ready)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        assert ready.wait(10), "Subscribe was not registered"

    def _run(self) -> None:
        try:
            for value in self._stream:
                self.values.append(value)
        except BaseException as exc:
            self.error = exc

    def ended(self, timeout: float) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()


def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _kafka_events(
    bootstrap: str, prefix: str, env_id: str, at_least: int,
) -> dict[str, list[bytes]]:
    """``env_id``'s messages on the topics under ``prefix``, by topic, read again until there
    are ``at_least`` of them (they may still be on their way: the producer is another
    process) or 30 s passed."""
    topics = existing_topics(bootstrap, prefix)
    deadline = time.monotonic() + 30
    while True:
        got = read_topics(bootstrap, topics, expected=at_least,
                          timeout=max(1.0, deadline - time.monotonic()))
        found = {
            topic.removeprefix(prefix + "."): [m.value() for m in msgs
                                               if environment_of(m.value()) == env_id]
            for topic, msgs in got.items()
        }
        if sum(map(len, found.values())) >= at_least or time.monotonic() > deadline:
            return found


def _by_topic(values: list[bytes], env_id: str) -> dict[str, list[bytes]]:
    out: dict[str, list[bytes]] = {}
    for value in values:
        event = events_pb2.Event.FromString(value)
        if environment_of(value) != env_id:
            continue
        which = event.WhichOneof("Payload")
        assert which is not None
        out.setdefault(PAYLOAD_TOPIC[which], []).append(value)
    return out


def test_lifecycle_through_the_api_and_subscribe_equals_kafka(
    serve_factory: Callable[[], Serve], kafka_bootstrap: str, topic_prefix: str,
) -> None:
    serve = serve_factory().start()
    with serve.client() as client:
        everything = Collector(client)
        info = client.create("default", detectors=["ITS", "TPC"], variables={"note": "e2e"},
                             user="alice")
        env_id = info.id
        assert info.state == "CONFIGURED"
        assert list(info.includedDetectors) == ["ITS", "TPC"]
        assert info.userVars["note"] == "e2e" and info.createdWhen > 0
        assert client.active_detectors() == ["ITS", "TPC"]
        listed = {e.id: e for e in client.environments()}
        assert listed[env_id].state == "CONFIGURED" and listed[env_id].rootRole == "default"

        steps = [("RESET", "DEPLOYED"), ("CONFIGURE", "CONFIGURED"),
                 ("START_ACTIVITY", "RUNNING"), ("STOP_ACTIVITY", "CONFIGURED")]
        run_number = 0
        for transition, state in steps:
            reply = client.control(env_id, transition, user="alice")
            assert reply.state == state and reply.id == env_id
            assert reply.endOfTransition >= reply.startOfTransition > 0
            assert reply.timestamp >= reply.endOfTransition
            if transition == "START_ACTIVITY":
                run_number = reply.currentRunNumber
                assert run_number > 0
        assert client.environment(env_id).environment.vars["last_run_number"] == str(run_number)

        # refused transition: FAILED_PRECONDITION, nothing changes
        with pytest.raises(ControlError) as refused:
            client.control(env_id, "STOP_ACTIVITY")
        assert refused.value.code == grpc.StatusCode.FAILED_PRECONDITION
        assert "not allowed from state CONFIGURED" in str(refused.value)
        assert client.environment(env_id).environment.state == "CONFIGURED"
        # unknown id: NOT_FOUND
        for call in (lambda: client.control("NOSUCHENV", "DEPLOY"),
                     lambda: client.environment("NOSUCHENV"),
                     lambda: client.destroy("NOSUCHENV")):
            with pytest.raises(ControlError) as missing:
                call()
            assert missing.value.code == grpc.StatusCode.NOT_FOUND
            assert "NOSUCHENV" in str(missing.value)
        # a detector belongs to one environment at a time
        with pytest.raises(ControlError) as taken:
            client.create("default", detectors=["TPC"])
        assert taken.value.code == grpc.StatusCode.FAILED_PRECONDITION
        assert "already in use" in str(taken.value) and "TPC" in str(taken.value)
        # malformed requests
        with pytest.raises(ControlError) as bad:
            client.create("nosuch-template")
        assert bad.value.code == grpc.StatusCode.INVALID_ARGUMENT
        assert "known templates: default, slow" in str(bad.value)

        client.destroy(env_id)
        assert client.environments() == [] and client.active_detectors() == []

        def subscribed() -> dict[str, list[bytes]]:
            return _by_topic(everything.values, env_id)

        _wait(lambda: any(events_pb2.Event.FromString(v).environmentEvent.message
                          == "environment teardown complete"
                          for v in subscribed().get("environment", [])),
              15, "the subscription to see the teardown's last event")
        # every message the subscription saw was handed to the producer: wait for all of them
        kafka = _kafka_events(kafka_bootstrap, topic_prefix, env_id,
                              at_least=sum(map(len, subscribed().values())))
        total = sum(len(v) for v in kafka.values())
        assert total > 40 and kafka["run"]
        _wait(lambda: sum(len(v) for v in _by_topic(everything.values, env_id).values()) >= total,
              15, "the subscription to catch up")
        received = _by_topic(everything.values, env_id)
        assert received == {t: v for t, v in kafka.items() if v}  # same bytes, same order
        assert everything.error is None
        # the instance id of GetFrameworkInfo is the one of the coreStartEvent
        core_topic = f"{topic_prefix}.core"
        core = read_topics(kafka_bootstrap, [core_topic], expected=1, timeout=30)[core_topic]
        starts = [events_pb2.Event.FromString(m.value()).coreStartEvent.frameworkId
                  for m in core]
        assert starts == [client.framework_info().frameworkId]
    assert serve.terminate() == 0, serve.output()
    assert everything.ended(10)
    assert "stopped cleanly" in serve.output()


def test_parallel_environments_busy_and_unsupported(serve_factory: Callable[[], Serve]) -> None:
    serve = serve_factory().start()
    with serve.client() as client:
        slow = client.create("slow", detectors=["MCH"]).id
        fast = client.create("default", detectors=["MID"]).id
        client.control(slow, "RESET")
        client.control(fast, "RESET")
        results: dict[str, Any] = {}

        def configure_slow() -> None:
            results["slow"] = client.control(slow, "CONFIGURE")

        thread = threading.Thread(target=configure_slow)
        thread.start()
        _wait(lambda: client.environment(slow).environment.currentTransition == "CONFIGURE",
              10, "the slow CONFIGURE to start")
        # another request on the busy environment: a clear status at once
        with pytest.raises(ControlError) as busy:
            client.control(slow, "START_ACTIVITY")
        assert busy.value.code == grpc.StatusCode.ABORTED
        assert f"environment {slow} is busy: CONFIGURE in progress" in str(busy.value)
        # the other environment is not held up: done while the slow one still configures
        reply = client.control(fast, "CONFIGURE")
        assert reply.state == "CONFIGURED"
        assert client.environment(slow).environment.currentTransition == "CONFIGURE"
        thread.join(30)
        assert results["slow"].state == "CONFIGURED"
        assert results["slow"].transitionDuration >= 2400

        # an RPC of the reference that we do not serve
        channel = grpc.insecure_channel(serve.address)
        teardown = channel.unary_unary("/o2control.Control/Teardown",
                                       request_serializer=lambda b: b,
                                       response_deserializer=lambda b: b)
        with pytest.raises(grpc.RpcError) as unimplemented:
            teardown(b"", timeout=10)
        assert unimplemented.value.code() == grpc.StatusCode.UNIMPLEMENTED
        assert "supported: ControlEnvironment, DestroyEnvironment" in str(
            unimplemented.value.details())
        channel.close()

        info = client.framework_info()
        assert info.environmentsCount == 2 and info.frameworkId
        assert "MCH" in info.activeDetectors and "MCH" not in info.availableDetectors
        services = client.integrated_services()
        assert services["core-kafka"].enabled and services["core-kafka"].connectionState == "READY"

        with pytest.raises(ControlError) as running:
            client.control(fast, "START_ACTIVITY")
            client.destroy(fast)
        assert running.value.code == grpc.StatusCode.FAILED_PRECONDITION
        client.destroy(fast, allow_running=True)
        client.destroy(slow)
    assert serve.terminate() == 0, serve.output()


def test_sigterm_during_a_transition_ends_cleanly_with_nothing_lost(
    serve_factory: Callable[[], Serve], kafka_bootstrap: str, topic_prefix: str,
) -> None:
    serve = serve_factory().start()
    with serve.client() as client:
        everything = Collector(client)
        info = client.create("slow", detectors=["ZDC"], asynchronous=True)
        env_id = info.id
        assert info.state == "STANDBY"
        _wait(lambda: client.environment(env_id).environment.currentTransition == "CONFIGURE",
              15, "CONFIGURE to start")
        serve.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
        time.sleep(0.3)
        with pytest.raises(ControlError) as refused:
            client.control(env_id, "START_ACTIVITY")
        assert refused.value.code == grpc.StatusCode.UNAVAILABLE
        assert serve.terminate() == 0, serve.output()
    output = serve.output()
    assert "SIGTERM: shutting down" in output and "stopped cleanly" in output
    assert "0 undelivered" in output
    assert everything.ended(10) and everything.error is None
    # the CONFIGURE in progress finished, and everything it published reached Kafka
    kafka = _kafka_events(kafka_bootstrap, topic_prefix, env_id, at_least=1)  # all delivered
    messages = [events_pb2.Event.FromString(v).environmentEvent.message
                for v in kafka["environment"]]
    assert messages[-1] == "created new environment"
    received = _by_topic(everything.values, env_id)
    assert received == {t: v for t, v in kafka.items() if v}


def test_second_serve_on_the_same_run_number_store_refuses(
    serve_factory: Callable[[], Serve],
) -> None:
    first = serve_factory().start()
    second = serve_factory().start(wait=False)
    assert second.proc is not None
    assert second.proc.wait(60) == 1
    output = second.output()
    assert "error: another aliecs-integration serve (pid" in output
    assert "already uses the run-number store" in output
    assert str(first.proc.pid) in output  # type: ignore[union-attr]
    assert first.terminate() == 0, first.output()


def test_unknown_transition_type_is_a_bad_request(serve_factory: Callable[[], Serve]) -> None:
    serve = serve_factory().start()
    with serve.client() as client:
        env_id = client.create("default").id
        channel = grpc.insecure_channel(serve.address)
        control = channel.unary_unary(
            "/o2control.Control/ControlEnvironment",
            request_serializer=o2control_pb2.ControlEnvironmentRequest.SerializeToString,
            response_deserializer=o2control_pb2.ControlEnvironmentReply.FromString)
        with pytest.raises(grpc.RpcError) as noop:
            control(o2control_pb2.ControlEnvironmentRequest(id=env_id), timeout=10)
        assert noop.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        channel.close()
        client.destroy(env_id)
    assert serve.terminate() == 0, serve.output()
    assert os.path.exists(serve.log)
