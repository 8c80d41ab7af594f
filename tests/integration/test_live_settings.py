"""Live settings against the real Consul and Kafka: the settings watch applies each kind of
change while a run is active (a plugin added and removed, a runtime variable, kafkaProducer
and kafkaEndpoints, enableKafka off and on, an invalid document), and every event reaches
Kafka exactly once.

One environment keeps a run active through the whole test; a second one cycles
STOP_ACTIVITY/START_ACTIVITY on another thread while the producer is switched. Every message
core-kafka accepted is recorded through its event listener; at the end the core topics are
read back and must hold exactly those messages (a multiset: none missing, none twice), minus
the ones encoded while ``enableKafka`` was false, in the same order per environment. The
legacy plugin's messages are counted against its calls' own outputs.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import consul
import pytest
import yaml

from aliecs_integration.engine.manager import EnvironmentManager
from aliecs_integration.engine.run_numbers import RunNumberStore
from aliecs_integration.host import PluginHost, declared_settings_keys
from aliecs_integration.pb import events_pb2
from aliecs_integration.publish.topics import TopicNames
from aliecs_integration.service.reload import apply_settings
from aliecs_integration.settings.sources import load_consul
from aliecs_integration.settings.watch import SettingsWatcher, WatchStatus
from tests.integration.test_control_service import _delete_topics
from tests.kafka_helpers import read_topics

LEGACY_FUNCS = ("kafka.PublishEnterStateUpdate", "kafka.PublishLeaveStateUpdate")


def legacy(call: events_pb2.Ev_CallEvent) -> bool:
    """Whether a call event is of one of the legacy plugin's functions (``func`` is written
    as in the workflow, with parentheses)."""
    return call.func.split("(")[0] in LEGACY_FUNCS


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 120.0) -> None:
    """Wait (generously: a shared, loaded machine) until ``predicate()``; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class Messages:
    """Every message core-kafka accepted, in order (its event listener)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.items: list[tuple[str, bytes | None, bytes]] = []

    def __call__(self, topic: str, key: bytes | None, value: bytes) -> None:
        with self.lock:
            self.items.append((topic, key, value))

    def mark(self) -> int:
        with self.lock:
            return len(self.items)

    def calls(self, since: int = 0) -> list[events_pb2.Ev_CallEvent]:
        with self.lock:
            items = self.items[since:]
        out = []
        for topic, _, value in items:
            if topic.endswith(".call"):
                out.append(events_pb2.Event.FromString(value).callEvent)
        return out


@pytest.fixture
def live(kafka_bootstrap: str, consul_address: str, topic_prefix: str,
         tmp_path: Path) -> Iterator[dict[str, Any]]:
    host_, _, port = consul_address.rpartition(":")
    client = consul.Consul(host=host_, port=int(port))
    key, vars_prefix = f"{topic_prefix}/settings", f"{topic_prefix}/vars/"
    base = {"kafkaEndpoints": [kafka_bootstrap],
            "kafkaProducer": {"topicRoot": topic_prefix, "topics": {"replicationFactor": 1}}}
    client.kv.put(key, yaml.safe_dump(base))
    client.kv.put(f"{vars_prefix}kafka_enabled", "false")
    declared = declared_settings_keys()
    settings = load_consul(consul_address, settings_key=key, vars_prefix=vars_prefix,
                           declared_keys=declared)
    host = PluginHost(settings)
    host.start()
    messages = Messages()
    core: Any = host.plugin("core-kafka")
    core.add_event_listener(messages)
    manager = EnvironmentManager(host, settings_runtime_vars=settings.runtime_vars,
                                 run_numbers=RunNumberStore(tmp_path / "run_number"),
                                 variable_defaults=host.variable_defaults())
    watcher = SettingsWatcher(f"consul://{consul_address}/{key}", settings,
                              lambda new: apply_settings(host, manager, new),
                              vars_prefix=vars_prefix, declared_keys=declared, wait_s=5.0)
    watcher.start()
    try:
        yield {"client": client, "key": key, "vars": vars_prefix, "base": base, "host": host,
               "manager": manager, "watcher": watcher, "messages": messages, "core": core}
    finally:
        watcher.stop()
        manager.close()
        host.stop(timeout_s=30)
        for k in (key, vars_prefix):
            client.kv.delete(k, recurse=k.endswith("/"))
        _delete_topics(kafka_bootstrap, topic_prefix)


def test_each_kind_of_change_applies_during_a_run_and_every_event_arrives_once(
        live: dict[str, Any], kafka_bootstrap: str, topic_prefix: str) -> None:
    client, key, vars_prefix = live["client"], live["key"], live["vars"]
    host: PluginHost = live["host"]
    manager: EnvironmentManager = live["manager"]
    watcher: SettingsWatcher = live["watcher"]
    messages: Messages = live["messages"]
    core = live["core"]
    topics = TopicNames(topic_prefix)

    def status() -> WatchStatus:
        return watcher.status()

    def put(document: dict[str, Any], applied: int) -> None:
        client.kv.put(key, yaml.safe_dump(document))
        wait_for(lambda: status().applied == applied, f"settings change #{applied} applied")

    def cycle(env_id: str) -> None:
        manager.transition(env_id, "STOP_ACTIVITY")
        manager.transition(env_id, "START_ACTIVITY")

    # a run is active on `env` for the whole test
    env = manager.create(detectors=["TPC"])
    for name in ("DEPLOY", "CONFIGURE", "START_ACTIVITY"):
        manager.transition(env.id, name)
    assert manager.get(env.id).run_number is not None
    wait_for(lambda: status().reachable, "the watch to reach Consul")
    assert host.plugin("kafka") is None

    # 1. integrationPlugins gains "kafka": the plugin starts, its call functions appear
    with_legacy = {**live["base"], "integrationPlugins": ["kafka"],
                   "kafkaEndpoint": kafka_bootstrap}
    put(with_legacy, 1)
    assert host.plugin("kafka") is not None
    assert set(LEGACY_FUNCS) <= set(host.call_function_names())
    before_var = messages.mark()
    cycle(env.id)
    assert not [c for c in messages.calls(before_var) if legacy(c)], \
        "kafka_enabled is still false: the legacy calls must not run"

    # 2. a runtime variable: kafka_enabled true applies to the running environment's next calls
    client.kv.put(f"{vars_prefix}kafka_enabled", "true")
    wait_for(lambda: status().applied == 2, "the runtime variable applied")
    assert manager.get(env.id).variables["kafka_enabled"] == "true"
    after_var = messages.mark()
    cycle(env.id)
    published = [c for c in messages.calls(after_var)
                 if legacy(c) and c.output.startswith("published")]
    assert len(published) >= 2, [c.output for c in messages.calls(after_var)]

    # 3. kafkaProducer changes while another environment transitions on another thread
    other = manager.create(detectors=["ITS"])
    for name in ("DEPLOY", "CONFIGURE", "START_ACTIVITY"):
        manager.transition(other.id, name)
    stop = threading.Event()
    cycles = [0]
    errors: list[BaseException] = []

    def drive() -> None:
        try:
            while not stop.is_set():
                cycle(other.id)
                cycles[0] += 1
        except BaseException as exc:  # reported below
            errors.append(exc)

    driver = threading.Thread(target=drive)
    driver.start()
    wait_for(lambda: cycles[0] >= 2, "the other environment cycling")
    first_publisher = core.publisher
    changed_producer = {**with_legacy, "kafkaProducer": {
        **live["base"]["kafkaProducer"], "properties": {"linger.ms": 7}}}
    put(changed_producer, 3)
    at_switch = cycles[0]
    wait_for(lambda: cycles[0] >= at_switch + 2, "cycles after the producer switch")
    second_publisher = core.publisher
    assert second_publisher is not None and second_publisher is not first_publisher
    assert second_publisher.config.properties["linger.ms"] == 7
    # ... and kafkaEndpoints (and the legacy kafkaEndpoint) change: the same broker by
    # another name, so that everything can be read back from one place
    port = kafka_bootstrap.rpartition(":")[2]
    renamed = {**changed_producer, "kafkaEndpoints": [f"localhost:{port}"],
               "kafkaEndpoint": f"localhost:{port}"}
    put(renamed, 4)
    at_switch = cycles[0]
    wait_for(lambda: cycles[0] >= at_switch + 2, "cycles after the endpoints switch")
    stop.set()
    driver.join(120)
    assert not errors, errors
    assert core.publisher is not None and core.publisher is not second_publisher
    assert core.publisher.bootstrap_servers == (f"localhost:{port}",)
    changed_producer = renamed

    # 4. enableKafka true -> false: nothing is published; false -> true: publishing resumes
    put({**changed_producer, "enableKafka": False}, 5)
    assert core.publisher is None
    off_from = messages.mark()
    cycle(env.id)
    off_to = messages.mark()
    assert off_to > off_from
    off_calls = [c for c in messages.calls(off_from) if legacy(c) and c.output]
    assert off_calls and all(c.output.startswith("skipped: enableKafka") for c in off_calls)
    put(changed_producer, 6)
    assert core.publisher is not None
    cycle(env.id)

    # 5. an invalid document is refused; the running settings keep working
    good = watcher.current
    client.kv.put(key, yaml.safe_dump({**changed_producer, "kafkaEndpoints": "nohost"}))
    wait_for(lambda: status().refused == 1, "the invalid document refused")
    assert "kafkaEndpoints" in (status().last_refusal or "")
    assert "expected a list" in (status().last_refusal or "")
    assert watcher.current is good and status().applied == 6
    cycle(env.id)

    # 6. integrationPlugins loses "kafka": stopped, its calls now fail as unknown functions
    put(live["base"] | {"kafkaProducer": changed_producer["kafkaProducer"],
                        "kafkaEndpoints": changed_producer["kafkaEndpoints"]}, 7)
    assert host.plugin("kafka") is None
    assert not set(LEGACY_FUNCS) & set(host.call_function_names())
    gone_from = messages.mark()
    cycle(env.id)
    gone = [c for c in messages.calls(gone_from) if c.func.startswith("kafka.")]
    assert gone and all("unknown function" in c.error for c in gone if c.error)
    assert any("unknown function kafka." in c.error for c in gone)
    assert manager.get(env.id).run_number is not None  # the run was never interrupted

    # every message core-kafka accepted while producing reached Kafka exactly once, in order
    assert host.flush(60)["core-kafka"].undelivered == 0
    with messages.lock:
        items = list(messages.items)
    expected = items[:off_from] + items[off_to:]
    skipped = items[off_from:off_to]
    core_topics = sorted({t for t, _, _ in items})
    read = read_topics(kafka_bootstrap, core_topics, len(expected), timeout=120)
    got = Counter((t, m.value()) for t, msgs in read.items() for m in msgs)
    want = Counter((t, v) for t, _, v in expected)
    assert got == want, (f"missing {sum((want - got).values())}, "
                         f"unexpected {sum((got - want).values())}")
    assert not {(t, v) for t, _, v in skipped} & set(got)
    per_topic = Counter(t.rsplit(".", 1)[1] for t, _ in got.elements())
    print(f"\ncore topics: {sum(got.values())} messages read back, equal to those accepted, "
          f"none twice: {dict(sorted(per_topic.items()))}; {len(skipped)} encoded while "
          "enableKafka was false, none published")
    by_key_read: dict[bytes | None, list[bytes]] = {}
    for m in read.get(topics.environment, []):
        by_key_read.setdefault(m.key(), []).append(m.value())
    by_key_sent: dict[bytes | None, list[bytes]] = {}
    for t, k, v in expected:
        if t == topics.environment:
            by_key_sent.setdefault(k, []).append(v)
    assert by_key_read == by_key_sent  # per-environment order held across every switch

    # the legacy plugin's messages: exactly what its calls said they published
    legacy_expected: Counter[str] = Counter({topics.env_list_running: 1})  # at its start
    for c in messages.calls():
        if legacy(c) and c.output.startswith("published "):
            first, _, rest = c.output.removeprefix("published ").partition("; ")
            legacy_expected[first] += 1
            if rest:
                legacy_expected[rest.split(" with ")[0]] += 1
    legacy_read = read_topics(kafka_bootstrap, sorted(legacy_expected),
                         sum(legacy_expected.values()), timeout=120)
    assert Counter({t: len(m) for t, m in legacy_read.items()}) == legacy_expected
    print(f"legacy topics: {sum(legacy_expected.values())} messages, as many as its calls "
          "reported")
