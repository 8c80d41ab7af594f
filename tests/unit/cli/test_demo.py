"""The demo's pieces without servers: the engine without Kafka, output (dev-server control:
``tests/unit/test_devservers.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from aliecs_integration.cli.demo import (
    format_progress,
    format_sample,
    pick_samples,
    topic_rows,
)
from aliecs_integration.engine.run_numbers import RunNumberStore
from aliecs_integration.errors import PluginError
from aliecs_integration.pb import events_pb2, kafka_pb2
from aliecs_integration.publish.metrics import Metrics
from aliecs_integration.publish.reader import Decoded
from aliecs_integration.scenario.model import parse_scenario
from aliecs_integration.scenario.runner import Progress
from aliecs_integration.scenario.session import run_scenario
from aliecs_integration.settings.core import Settings


def test_without_a_source_checkout_the_demo_needs_servers_that_answer(tmp_path: Path) -> None:
    import socket

    from aliecs_integration.cli.demo import RunningServer, demo_servers
    from aliecs_integration.errors import DevServerError

    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        up = f"127.0.0.1:{listening.getsockname()[1]}"
        with socket.socket() as closed:
            closed.bind(("127.0.0.1", 0))
            down = f"127.0.0.1:{closed.getsockname()[1]}"  # bound, not listening: refused
            kafka, consul = demo_servers(tmp_path, up, down)
            assert isinstance(kafka, RunningServer) and isinstance(consul, RunningServer)
            assert kafka.ensure_running() is True and not kafka.started
            with pytest.raises(DevServerError, match=f"consul does not answer at {down}, and "
                               "this installation has no dev/consul script"):
                consul.ensure_running()


def test_engine_without_kafka(tmp_path: Path) -> None:
    settings = Settings.from_dict({"enableKafka": False}, source="test")
    scenario = parse_scenario({"environments": [
        {"id": "a", "actions": ["DEPLOY", "CONFIGURE", "START_ACTIVITY", "destroy"]}]},
        source="t", base_dir=tmp_path)
    seen: list[Progress] = []
    outcome = run_scenario(settings, scenario, run_numbers=RunNumberStore(tmp_path / "rn"),
                           on_progress=seen.append, require_plugins=True)
    assert outcome.metrics is None  # producing is off
    assert outcome.result.failures == []
    assert [p.action for p in seen] == ["CREATE", "DEPLOY", "CONFIGURE", "START_ACTIVITY",
                                        "DESTROY"]
    assert outcome.missing_plugins(settings) == []


def test_engine_refuses_to_run_without_a_requested_plugin(tmp_path: Path) -> None:
    settings = Settings.from_dict({"enableKafka": False, "integrationPlugins": ["nosuch"]},
                                  source="test")
    scenario = parse_scenario({"environments": [{"id": "a", "actions": ["DEPLOY"]}]},
                              source="t", base_dir=tmp_path)
    with pytest.raises(PluginError, match="nosuch: no installed plugin provides 'nosuch'"):
        run_scenario(settings, scenario, run_numbers=RunNumberStore(tmp_path / "rn"),
                     require_plugins=True)


def test_progress_lines() -> None:
    ok = Progress("phys", "ABC", 2, "START_ACTIVITY", "RUNNING", True, True, run_number=7)
    assert format_progress(ok, 4) == "  phys  ABC           START_ACTIVITY  -> RUNNING  run 7"
    stopped = Progress("phys", "ABC", 3, "STOP_ACTIVITY", "CONFIGURED", True, True,
                       ended_run=7, notes=("call x failed",))
    assert format_progress(stopped, 4).splitlines() == [
        "  phys  ABC           STOP_ACTIVITY   -> CONFIGURED  run 7 ended",
        "                        note: call x failed",
    ]
    bad = Progress("phys", "ABC", 4, "EXIT", "RUNNING", False, False, error="refused")
    assert format_progress(bad, 4) == "! phys  ABC           EXIT            FAILED: refused"
    service = Progress("phys", "ABC", 5, "dcs: dcs.SOR()", "RUNNING", True, True,
                       notes=("DONE_OK",))
    assert format_progress(service, 4).endswith("dcs: dcs.SOR()  DONE_OK")


def test_topic_rows_with_read_back() -> None:
    metrics = Metrics()
    for _ in range(5):
        metrics.count_published("aliecs.run")
    for _ in range(3):
        metrics.record_sent("aliecs.run", 0.01)
    metrics.record_failed("aliecs.run")
    metrics.count_published("aliecs.core")
    metrics.record_sent("aliecs.core", 0.01)
    rows = topic_rows(metrics.snapshot(), {"aliecs.run": (2, 1)})
    assert rows == [("aliecs.core", "1", "1", "0", "0", "0", "0"),
                    ("aliecs.run", "5", "3", "1", "0", "1", "2 (1 undecodable)"),
                    ("total", "6", "4", "1", "0", "1", "2")]
    assert topic_rows(metrics.snapshot())[-1] == ("total", "6", "4", "1", "0", "1")


def decoded(topic: str, message: object, offset: int = 0) -> Decoded:
    return Decoded(topic, 0, offset, None, b"", None, "t", message=message)  # type: ignore[arg-type]


def test_samples_prefer_our_environments_and_the_interesting_moments() -> None:
    def env(env_id: str, step: str) -> events_pb2.Event:
        return events_pb2.Event(environmentEvent=events_pb2.Ev_EnvironmentEvent(
            environmentId=env_id, transitionStep=step, message="transition step finished"))

    listing = kafka_pb2.ActiveRunsList(activeRuns=[kafka_pb2.EnvInfo(environmentId="A"),
                                                   kafka_pb2.EnvInfo(environmentId="B")])
    items = [
        decoded("aliecs.environment", env("OTHER", "enter_RUNNING"), 0),
        decoded("aliecs.environment", env("A", "before_DEPLOY"), 1),
        decoded("aliecs.environment", env("A", "enter_RUNNING"), 2),
        decoded("aliecs.env_list.RUNNING", kafka_pb2.ActiveRunsList(), 0),
        decoded("aliecs.env_list.RUNNING", listing, 1),
    ]
    chosen = pick_samples(items, {"A", "B"})
    assert [(title.split(":")[0], item.offset) for title, item in chosen] == [
        ("an environment event", 2), ("a legacy ActiveRunsList", 1)]
    text = format_sample(chosen[0][1])
    assert text.splitlines()[0] == "   aliecs.environment  partition 0  offset 2  key none  (t)"
    assert '"environmentId": "A"' in text
