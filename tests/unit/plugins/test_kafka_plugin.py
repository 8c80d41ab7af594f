"""KafkaPlugin with a fake publisher: topics, messages, running list, skips, bad variables."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import inspect
import itertools
import logging
from collections.abc import Iterable, Sequence
from typing import Any

import attrs
import pytest
from aliecs_integration_plugins.kafka import KafkaPlugin
from aliecs_integration_plugins.kafka.env_info import EnvVariableError

from aliecs_integration.engine.manager import EnvironmentManager
from aliecs_integration.errors import PluginError
from aliecs_integration.host import ENTRY_POINT_GROUP, PluginHost
from aliecs_integration.pb import kafka_pb2
from aliecs_integration.plugin import is_nonblocking
from aliecs_integration.publish.headers import Headers
from aliecs_integration.records import (
    CallContext,
    CallTraits,
    ConnectionState,
    DeliveryReport,
    EnvironmentSnapshot,
    HostStartEvent,
    HostStopEvent,
    PluginContext,
)
from aliecs_integration.settings.core import Settings
from aliecs_integration.settings.producer import ProducerConfig


@attrs.define
class FakePublisher:
    servers: Sequence[str]
    config: ProducerConfig
    sent: list[tuple[str, bytes, bytes | None]] = attrs.field(factory=list)
    headers: list[tuple[str, Headers | None]] = attrs.field(factory=list)
    prepared: list[str] = attrs.field(factory=list)
    closed_with: list[float | None] = attrs.field(factory=list)
    state: ConnectionState = ConnectionState.CONNECTING

    def publish(self, topic: str, value: bytes, key: bytes | None = None,
                headers: Headers | None = None) -> None:
        self.sent.append((topic, value, key))
        self.headers.append((topic, headers))

    def prepare(self, topics: Iterable[str]) -> None:
        self.prepared.extend(topics)

    def flush(self, timeout_s: float) -> DeliveryReport:
        return DeliveryReport(len(self.sent), 0, 0, 0)

    def close(self, timeout_s: float | None = None) -> DeliveryReport:
        self.closed_with.append(timeout_s)
        return DeliveryReport(len(self.sent), 0, 0, 0)

    def connection_state(self) -> ConnectionState:
        return self.state

    def topics(self) -> list[str]:
        return [t for t, _, _ in self.sent]

    def decoded(self, topic: str) -> list[Any]:
        cls = kafka_pb2.ActiveRunsList if ".env_list." in topic else kafka_pb2.NewStateNotification
        return [cls.FromString(v) for t, v, _ in self.sent if t == topic]


class Harness:
    def __init__(self, settings: Settings | None = None, instance_id: str = "") -> None:
        self.publishers: list[FakePublisher] = []
        self.ticks = itertools.count(1000)
        settings = settings or Settings(kafka_endpoint="legacy:9092")
        self.plugin = KafkaPlugin(
            PluginContext("kafka", settings, instance_id), publisher_factory=self._factory,
            clock_ms=self._now,
        )
        self.functions = self.plugin.register_call_functions()

    def _now(self) -> int:
        return next(self.ticks)

    def _factory(self, servers: Sequence[str], config: ProducerConfig) -> FakePublisher:
        publisher = FakePublisher(servers, config)
        self.publishers.append(publisher)
        return publisher

    @property
    def pub(self) -> FakePublisher:
        [publisher] = self.publishers
        return publisher

    def call(self, func: str, trigger: str, **variables: str) -> str | None:
        return self.functions[func](context(trigger, **variables))


def env_vars(env_id: str = "ENV1", **extra: str) -> dict[str, str]:
    base = {
        "environment_id": env_id,
        "kafka_enabled": "true",
        "enter_state_time_ms": "1700000000000",
        "detectors": '["TPC","ITS"]',
        "run_type": "PHYSICS",
        "run_number": "17",
    }
    base.update(extra)
    return base


def context(trigger: str, **variables: str) -> CallContext:
    env_id = variables.get("environment_id", "ENV1")
    snap = EnvironmentSnapshot(id=env_id, state="X", variables=variables)
    return CallContext(environment=snap, func="kafka.F()", trigger=trigger, args="",
                       traits=CallTraits(trigger=trigger))


ENTER = "PublishEnterStateUpdate"
LEAVE = "PublishLeaveStateUpdate"
START = "PublishStartActivityUpdate"


def test_attributes_and_exports() -> None:
    h = Harness()
    assert KafkaPlugin.pretty_name == "Kafka (legacy state notifications)"
    assert KafkaPlugin.endpoint_setting == "kafkaEndpoint"
    assert h.plugin.endpoint() == "legacy:9092"
    assert set(h.functions) == {ENTER, LEAVE, START}
    assert h.publishers == []  # nothing connects before host start or first use


def test_host_start_prepares_topics_and_publishes_empty_list() -> None:
    h = Harness()
    h.plugin.on_host_start(HostStartEvent(plugin_names=("kafka",)))
    assert h.pub.servers == ("legacy:9092",)
    assert "aliecs.env_state.RUNNING" in h.pub.prepared
    assert "aliecs.env_leave_state.RUNNING" in h.pub.prepared
    assert "aliecs.env_list.RUNNING" in h.pub.prepared
    assert h.pub.topics() == ["aliecs.env_list.RUNNING"]
    [listing] = h.pub.decoded("aliecs.env_list.RUNNING")
    assert list(listing.activeRuns) == [] and listing.timestamp == 1000
    assert h.pub.sent[0][2] is None  # no key


def test_enter_state_publishes_notification_then_list() -> None:
    h = Harness()
    out = h.call(ENTER, "enter_RUNNING", **env_vars())
    assert h.pub.topics() == ["aliecs.env_state.RUNNING", "aliecs.env_list.RUNNING"]
    assert all(key is None for _, _, key in h.pub.sent)
    [note] = h.pub.decoded("aliecs.env_state.RUNNING")
    assert note.timestamp == 1000
    assert note.envInfo.environmentId == "ENV1" and note.envInfo.state == "RUNNING"
    assert note.envInfo.runNumber == 17 and note.envInfo.runType == "PHYSICS"
    assert note.envInfo.enterStateTimestamp == 1700000000000
    [listing] = h.pub.decoded("aliecs.env_list.RUNNING")
    assert listing.timestamp == 1001
    assert [r.environmentId for r in listing.activeRuns] == ["ENV1"]
    assert list(listing.activeRuns[0].detectors) == ["ITS", "TPC"]
    assert out is not None and "aliecs.env_state.RUNNING" in out and "1 run(s)" in out


def test_list_after_every_enter_tracks_running_set_in_spec_order() -> None:
    h = Harness()
    h.call(ENTER, "enter_RUNNING", **env_vars("A", detectors='["TPC"]'))
    h.call(ENTER, "enter_RUNNING", **env_vars("B", detectors='["TOF","ITS"]'))
    h.call(ENTER, "enter_RUNNING", **env_vars("C", detectors='["TOF","TPC","EMC"]'))
    h.call(ENTER, "enter_CONFIGURED", **env_vars("B"))
    h.call(ENTER, "DESTROY", **env_vars("C"))
    lists = [[r.environmentId for r in x.activeRuns]
             for x in h.pub.decoded("aliecs.env_list.RUNNING")]
    assert lists == [["A"], ["B", "A"], ["B", "C", "A"], ["C", "A"], ["A"]]
    assert h.pub.topics()[-2:] == ["aliecs.env_state.UNKNOWN", "aliecs.env_list.RUNNING"]
    assert h.plugin.active_runs.ids() == ("A",)


def test_leave_state_is_the_eor_and_still_says_running() -> None:
    h = Harness()
    h.call(LEAVE, "leave_RUNNING", **env_vars())
    assert h.pub.topics() == ["aliecs.env_leave_state.RUNNING"]
    [note] = h.pub.decoded("aliecs.env_leave_state.RUNNING")
    assert note.envInfo.state == "RUNNING" and note.envInfo.runNumber == 17
    assert h.plugin.active_runs.ids() == ()  # leaving does not touch the set


def test_leave_configured_has_no_run_fields() -> None:
    h = Harness()
    h.call(LEAVE, "leave_CONFIGURED", **env_vars())
    [note] = h.pub.decoded("aliecs.env_leave_state.CONFIGURED")
    assert not note.envInfo.HasField("runNumber") and not note.envInfo.HasField("runType")


@pytest.mark.parametrize(
    ("trigger", "topic", "state"),
    [
        ("before_START_ACTIVITY", "aliecs.before_start_activity", "CONFIGURED"),
        ("after_START_ACTIVITY", "aliecs.after_start_activity", "RUNNING"),
        ("enter_RUNNING", "aliecs.start_activity", "RUNNING"),
        ("before_STOP_ACTIVITY", "aliecs.start_activity", "RUNNING"),
    ],
)
def test_start_activity_topic_by_trigger(trigger: str, topic: str, state: str) -> None:
    h = Harness()
    h.call(START, trigger, **env_vars())
    assert h.pub.topics() == [topic]
    [note] = h.pub.decoded(topic)
    assert note.envInfo.state == state
    assert note.envInfo.HasField("runNumber") and note.envInfo.runNumber == 17
    assert h.plugin.active_runs.ids() == ()


@pytest.mark.parametrize("value", ["false", "", "yes", None])
@pytest.mark.parametrize("func", [ENTER, LEAVE, START])
def test_kafka_enabled_not_true_publishes_nothing(func: str, value: str | None) -> None:
    h = Harness()
    variables = env_vars(detectors="not json")  # would fail if it were read
    if value is None:
        del variables["kafka_enabled"]
    else:
        variables["kafka_enabled"] = value
    assert h.call(func, "enter_RUNNING", **variables) == "skipped: kafka_enabled is not true"
    assert h.publishers == []
    assert h.plugin.active_runs.ids() == ()


def test_kafka_enabled_is_case_insensitive_like_the_workflow_condition() -> None:
    h = Harness()
    h.call(LEAVE, "leave_DEPLOYED", **env_vars(kafka_enabled=" TRUE "))
    assert h.pub.topics() == ["aliecs.env_leave_state.DEPLOYED"]


def test_enable_kafka_false_publishes_nothing_anywhere() -> None:
    h = Harness(Settings(kafka_endpoint="legacy:9092", enable_kafka=False))
    h.plugin.on_host_start(HostStartEvent(plugin_names=("kafka",)))
    assert h.call(ENTER, "enter_RUNNING", **env_vars()) == "skipped: enableKafka is false"
    assert h.publishers == []
    assert h.plugin.connection_state() is ConnectionState.IDLE


def test_missing_endpoint_is_refused_at_construction() -> None:
    with pytest.raises(PluginError, match="kafkaEndpoint"):
        KafkaPlugin(PluginContext("kafka", Settings()))


BAD_VARIABLES = [
    ("environment_id", None),
    ("detectors", "ITS,TPC"),
    ("detectors", "[1]"),
    ("detectors", None),
    ("enter_state_time_ms", "soon"),
    ("enter_state_time_ms", None),
    ("run_number", "seventeen"),
    ("run_number", "99999999999"),
    ("run_number", None),
]


@pytest.mark.parametrize(("name", "value"), BAD_VARIABLES)
@pytest.mark.parametrize(
    ("func", "trigger"),
    [(ENTER, "enter_RUNNING"), (LEAVE, "leave_RUNNING"), (START, "before_START_ACTIVITY"),
     (START, "after_START_ACTIVITY")],
)
def test_bad_variable_raises_before_anything_is_sent(
    func: str, trigger: str, name: str, value: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    h = Harness()
    h.call(ENTER, "enter_RUNNING", **env_vars("OTHER"))
    before = list(h.pub.sent)
    variables = env_vars("BADENV")
    if value is None:
        del variables[name]
    else:
        variables[name] = value
    caplog.set_level(logging.ERROR)
    with pytest.raises(EnvVariableError) as info:
        h.call(func, trigger, **variables)
    assert name in str(info.value)
    assert h.pub.sent == before
    assert h.plugin.active_runs.ids() == ("OTHER",)
    # Logged with the environment id (from the call context when the variable is missing).
    expected_id = "ENV1" if name == "environment_id" else "BADENV"
    assert any(expected_id in r.getMessage() and name in r.getMessage() for r in caplog.records)


def test_unusable_state_in_trigger_raises_before_sending() -> None:
    h = Harness()
    with pytest.raises(ValueError, match="enter_running"):
        h.call(ENTER, "enter_running", **env_vars())
    assert h.publishers == [] or h.publishers[0].sent == []
    assert h.plugin.active_runs.ids() == ()


def test_bad_state_is_refused_every_time_and_good_ones_still_publish() -> None:
    h = Harness()
    for _ in range(2):  # only valid topics are remembered
        with pytest.raises(ValueError, match="enter_running"):
            h.call(ENTER, "enter_running", **env_vars())
    h.call(LEAVE, "leave_RUNNING", **env_vars())
    h.call(ENTER, "enter_RUNNING", **env_vars())
    h.call(LEAVE, "leave_RUNNING", **env_vars())
    assert h.pub.topics() == ["aliecs.env_leave_state.RUNNING", "aliecs.env_state.RUNNING",
                              "aliecs.env_list.RUNNING", "aliecs.env_leave_state.RUNNING"]


def test_changed_variables_change_the_messages() -> None:
    h = Harness()
    h.call(ENTER, "enter_RUNNING", **env_vars("A", detectors='["TPC"]'))
    h.call(LEAVE, "leave_RUNNING", **env_vars("A", detectors='["TPC"]'))
    h.call(LEAVE, "leave_RUNNING", **env_vars("A", detectors='["TPC","MFT"]', run_number="18"))
    h.call(ENTER, "enter_RUNNING", **env_vars("A", detectors='["ZDC","TPC"]', run_number="19",
                                              enter_state_time_ms="1700000000500"))
    h.call(ENTER, "enter_RUNNING", **env_vars("B", detectors='["TPC","ITS"]'))
    leaves = [(list(n.envInfo.detectors), n.envInfo.runNumber)
              for n in h.pub.decoded("aliecs.env_leave_state.RUNNING")]
    assert leaves == [(["TPC"], 17), (["TPC", "MFT"], 18)]
    enters = [(n.envInfo.environmentId, n.envInfo.runNumber, n.envInfo.enterStateTimestamp)
              for n in h.pub.decoded("aliecs.env_state.RUNNING")]
    assert enters == [("A", 17, 1700000000000), ("A", 19, 1700000000500),
                      ("B", 17, 1700000000000)]
    lists = [[(r.environmentId, list(r.detectors), r.runNumber) for r in x.activeRuns]
             for x in h.pub.decoded("aliecs.env_list.RUNNING")]
    assert lists == [
        [("A", ["TPC"], 17)],
        [("A", ["TPC", "ZDC"], 19)],
        [("B", ["ITS", "TPC"], 17), ("A", ["TPC", "ZDC"], 19)],
    ]


def test_call_functions_are_nonblocking_and_the_default_timeouts_leave_room() -> None:
    h = Harness()
    assert all(is_nonblocking(fn) for fn in h.functions.values())
    # Blocked at worst ~2 x blockTimeoutSeconds (two messages): below the default call timeout.
    default_timeout = inspect.signature(EnvironmentManager).parameters["call_timeout_default_s"]
    assert 2 * ProducerConfig().block_timeout_s < default_timeout.default


def test_topic_root_comes_from_producer_settings() -> None:
    h = Harness(Settings(kafka_endpoint="legacy:9092", producer=ProducerConfig(topic_root="t.x")))
    h.call(ENTER, "enter_STANDBY", **env_vars())
    assert h.pub.topics() == ["t.x.env_state.STANDBY", "t.x.env_list.RUNNING"]
    assert h.pub.config.topic_root == "t.x"


def test_stop_closes_with_timeout_and_state_follows_publisher() -> None:
    h = Harness()
    h.plugin.on_host_start(HostStartEvent(plugin_names=("kafka",)))
    h.pub.state = ConnectionState.READY
    assert h.plugin.connection_state() is ConnectionState.READY
    h.plugin.on_host_stop(HostStopEvent(timeout_s=2.5))
    assert h.pub.closed_with == [pytest.approx(2.5, abs=0.5)]  # what is left of 2.5 s
    assert h.plugin.connection_state() is ConnectionState.SHUTDOWN
    with pytest.raises(PluginError, match="stopped"):
        h.call(LEAVE, "leave_RUNNING", **env_vars())
    h.plugin.on_host_stop(HostStopEvent(timeout_s=1))  # idempotent
    assert h.pub.closed_with == [pytest.approx(2.5, abs=0.5)]  # what is left of 2.5 s


def _ep() -> importlib.metadata.EntryPoint:
    return importlib.metadata.EntryPoint(
        name="kafka", value="aliecs_integration_plugins.kafka:KafkaPlugin", group=ENTRY_POINT_GROUP
    )


def test_host_loads_it_only_when_listed_and_exposes_the_calls() -> None:
    raw = {"kafkaEndpoint": "legacy:9092", "integrationPlugins": ["kafka"], "enableKafka": False}
    host = PluginHost(Settings.from_dict(raw, source="test"), entry_points=[_ep()])
    host.start()
    assert "kafka" in host.plugin_names()
    assert {"kafka.PublishEnterStateUpdate", "kafka.PublishLeaveStateUpdate",
            "kafka.PublishStartActivityUpdate"} <= set(host.call_function_names())
    [status] = [s for s in host.list_plugins() if s.name == "kafka"]
    assert status.pretty_name == "Kafka (legacy state notifications)"
    assert status.endpoint == "legacy:9092"

    unlisted = PluginHost(Settings.from_dict({**raw, "integrationPlugins": []}, source="test"),
                          entry_points=[_ep()])
    unlisted.start()
    assert "kafka" not in unlisted.plugin_names()
    assert unlisted.call_function("kafka.PublishEnterStateUpdate") is None


@pytest.mark.parametrize("timestamp_ms", [0, 1, 127, 128, 1_700_000_000_123, 2**64 - 1])
@pytest.mark.parametrize("info", [
    kafka_pb2.EnvInfo(),
    kafka_pb2.EnvInfo(environmentId="ENV1", state="RUNNING", detectors=["TPC", "ITS"],
                      enterStateTimestamp=1_700_000_000_000, runNumber=0, runType=""),
    kafka_pb2.EnvInfo(environmentId="é" * 200, state="CONFIGURED", detectors=["x"] * 50,
                      enterStateTimestamp=2**64 - 1),
])
def test_notification_bytes_are_those_a_serializer_writes(
    info: kafka_pb2.EnvInfo, timestamp_ms: int
) -> None:
    """The notification assembled from the cached EnvInfo bytes is canonical, cache miss and
    hit alike (the same bytes as building and serializing the message)."""
    from aliecs_integration_plugins.kafka.plugin import _notification

    expected = kafka_pb2.NewStateNotification(envInfo=info, timestamp=timestamp_ms)
    for _ in range(2):
        value = _notification(info, timestamp_ms)
        assert value == expected.SerializeToString()
        assert kafka_pb2.NewStateNotification.FromString(value).SerializeToString(
            deterministic=True) == value


def test_every_legacy_message_carries_its_type_an_event_id_and_the_instance() -> None:
    h = Harness(instance_id="instance-7")
    h.plugin.on_host_start(HostStartEvent(plugin_names=("kafka",)))
    h.call(ENTER, "enter_RUNNING", **env_vars())
    h.call(LEAVE, "leave_RUNNING", **env_vars(), state="RUNNING")
    h.call(START, "before_START_ACTIVITY", **env_vars())
    types = {"NewStateNotification": kafka_pb2.NewStateNotification,
             "ActiveRunsList": kafka_pb2.ActiveRunsList}
    seen: set[str] = set()
    ids = []
    assert len(h.pub.headers) == len(h.pub.sent) >= 5
    for (topic, headers), (_, value, _) in zip(h.pub.headers, h.pub.sent, strict=True):
        assert headers is not None
        found = dict(headers)
        assert list(found) == ["content-type", "event-id", "source-instance-id"]
        name = "ActiveRunsList" if ".env_list." in topic else "NewStateNotification"
        seen.add(name)
        assert found["content-type"] == (
            f"application/x-protobuf; messageType=kafka.{name}".encode())
        assert found["source-instance-id"] == b"instance-7"
        types[name].FromString(value)  # the value is that message
        ids.append(found["event-id"])
    assert seen == set(types)
    assert len(set(ids)) == len(ids)
