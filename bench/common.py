"""Shared helpers of the benchmark scripts: broker control, host set-up, statistics, results.

Every script accepts ``--quick`` (a short smoke run), ``--bootstrap`` (default the dev single
broker ``127.0.0.1:19092``) and ``--kafka-script`` (default ``dev/kafka``: a script answering
``status``/``start``/``stop`` for that broker). When the broker is not running the script
starts it with ``<kafka-script> start`` and says so. Results go to ``bench/results/<name>.json``
(gitignored) and are printed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import platform
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as `python bench/x.py` from anywhere
    sys.path.insert(0, str(REPO))

import confluent_kafka  # noqa: E402
from aliecs_integration_plugins.core_kafka import encode  # noqa: E402
from aliecs_integration_plugins.kafka.plugin import KafkaPlugin  # noqa: E402

from aliecs_integration.engine.manager import EnvironmentManager  # noqa: E402
from aliecs_integration.engine.run_numbers import RunNumberStore  # noqa: E402
from aliecs_integration.engine.workflow import Workflow  # noqa: E402
from aliecs_integration.hookspecs import hookimpl  # noqa: E402
from aliecs_integration.host import PluginHost  # noqa: E402
from aliecs_integration.pb import events_pb2  # noqa: E402
from aliecs_integration.publish.headers import HeaderMaker, Headers  # noqa: E402
from aliecs_integration.publish.metrics import MetricsSnapshot  # noqa: E402
from aliecs_integration.records import ConnectionState, DeliveryReport  # noqa: E402
from aliecs_integration.settings.core import Settings  # noqa: E402
from aliecs_integration.settings.producer import ProducerConfig  # noqa: E402

RESULTS = REPO / "bench" / "results"
DEFAULT_BOOTSTRAP = "127.0.0.1:19092"
DEFAULT_KAFKA_SCRIPT = REPO / "dev" / "kafka"

log = logging.getLogger("bench")


# --------------------------------------------------------------------------- command line
def parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with the options every benchmark shares."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="short smoke run (seconds, not minutes)")
    p.add_argument("--bootstrap", default=DEFAULT_BOOTSTRAP,
                   help=f"single broker to use (default {DEFAULT_BOOTSTRAP})")
    p.add_argument("--kafka-script", type=Path, default=DEFAULT_KAFKA_SCRIPT,
                   help="script with status/start/stop for that broker (default dev/kafka)")
    p.add_argument("--repeat", type=int, default=0,
                   help="repetitions per measurement (default 3, quick 2)")
    p.add_argument("-v", "--verbose", action="store_true", help="show the host's INFO logs")
    return p


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not verbose:  # replication-factor clamp warnings on the single dev broker: expected
        logging.getLogger("aliecs_integration.publish.topics").setLevel(logging.ERROR)
        # librdkafka's own log lines (one per failed connect, twice a second in an outage);
        # the publisher's rate-limited summary of the same errors stays visible
        logging.getLogger("aliecs_integration.publish.publisher.librdkafka").setLevel(logging.CRITICAL)


# --------------------------------------------------------------------------- broker
class Broker:
    """The benchmark's broker, controlled through ``dev/kafka``-style ``script``."""

    def __init__(self, script: Path, bootstrap: str) -> None:
        self.script, self.bootstrap = script, bootstrap

    def _run(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(self.script), *args], capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=timeout, check=False)

    def running(self) -> bool:
        return self._run("status", timeout=60).returncode == 0

    def ensure_up(self) -> bool:
        """Start the broker when it is down (says so); True when this call started it."""
        if self.running():
            print(f"broker {self.bootstrap}: already running")
            return False
        print(f"broker {self.bootstrap}: not running, starting it with `{self.script} start`")
        self.start()
        return True

    def start(self) -> None:
        res = self._run("start")
        if res.returncode != 0:
            raise SystemExit(f"{self.script} start failed:\n{res.stdout}{res.stderr}")

    def stop(self) -> None:
        res = self._run("stop")
        if res.returncode != 0:
            raise SystemExit(f"{self.script} stop failed:\n{res.stdout}{res.stderr}")


# --------------------------------------------------------------------------- host
def topic_root() -> str:
    """A topic root unique to this run (fresh topics, nothing read from earlier runs)."""
    return f"bench{secrets.token_hex(4)}"


def settings_for(
    bootstrap: str, root: str, *, legacy: bool = True, enable: bool = True,
    properties: Mapping[str, Any] | None = None, queue: Mapping[str, Any] | None = None,
    plugins: Sequence[str] = (),
) -> Settings:
    """Settings as a deployment writes them: core-kafka on ``bootstrap``, the legacy ``kafka``
    plugin too when ``legacy`` (same endpoint and config, so both share one producer)."""
    producer: dict[str, Any] = {"topicRoot": root}
    if properties:
        producer["properties"] = dict(properties)
    if queue:
        producer["queue"] = dict(queue)
    data: dict[str, Any] = {
        "kafkaEndpoints": [bootstrap], "enableKafka": enable, "kafkaProducer": producer,
        "integrationPlugins": [*(["kafka"] if legacy else []), *plugins],
    }
    if legacy:
        data["kafkaEndpoint"] = bootstrap
    return Settings.from_dict(data, source="bench")


def start_host(settings: Settings, extra_plugins: Mapping[str, object] | None = None) -> PluginHost:
    host = PluginHost(settings, extra_plugins=extra_plugins)
    host.start()
    return host


def core_metrics(host: PluginHost) -> MetricsSnapshot:
    """core-kafka's metrics (the producer it shares with the legacy plugin)."""
    snapshot = host.metrics().get("core-kafka")
    if snapshot is None:
        raise SystemExit("core-kafka is not loaded: is the package installed (pip install -e .)?")
    return snapshot


def flush(host: PluginHost, timeout_s: float) -> DeliveryReport:
    """Flush every plugin within ``timeout_s``; core-kafka's report (shared producer)."""
    reports = host.flush(timeout_s)
    if "core-kafka" not in reports:
        raise SystemExit("core-kafka is not loaded or not producing")
    return reports["core-kafka"]


def wait_ready(host: PluginHost, timeout_s: float = 60.0) -> None:
    """Flush until everything published so far is acknowledged (topics created, warm)."""
    report = flush(host, timeout_s)
    if report.undelivered:
        raise SystemExit(f"{report.undelivered} warm-up message(s) not acknowledged within "
                         f"{timeout_s} s: is the broker at {host.settings.kafka_endpoints} up?")


def raw_config(settings: Settings) -> dict[str, Any]:
    """The librdkafka config the publisher gives its producer for ``settings``, without its
    callbacks: the same properties (acks=all, idempotence, message.timeout.ms=0, failures-only
    delivery reports, user's) and queue window."""
    config: ProducerConfig = settings.producer
    return dict(config.client_config(settings.kafka_endpoints))


Message = tuple[str, bytes, bytes | None, "Headers | None"]


class _CoreRecorder:
    """Stands in for core-kafka: records the message core-kafka would publish for each hook
    (its own ``encode``), publishes nothing."""

    def __init__(self, sink: list[Message], settings: Settings, records: list[object]) -> None:
        from aliecs_integration.publish.topics import TopicNames

        self.sink, self.topics = sink, TopicNames(settings.producer.topic_root)
        self.headers = HeaderMaker(events_pb2.Event, "bench-capture")
        self.records = records

    def _record(self, record: object) -> None:
        m = encode(record, self.topics)
        self.sink.append((m.topic, m.value, m.key, self.headers()))
        self.records.append(record)

    @hookimpl
    def on_env_transition_step(self, event: Any) -> None:
        self._record(event)

    @hookimpl
    def on_call(self, event: Any) -> None:
        self._record(event)

    @hookimpl
    def on_run_sor_eor(self, event: Any) -> None:
        self._record(event)

    @hookimpl
    def on_role_event(self, event: Any) -> None:
        self._record(event)

    @hookimpl
    def on_task_event(self, event: Any) -> None:
        self._record(event)

    @hookimpl
    def on_integrated_service_event(self, event: Any) -> None:
        self._record(event)


class _RecordingPublisher:
    """The legacy plugin's publisher, recording instead of producing."""

    def __init__(self, sink: list[Message]) -> None:
        self.sink = sink

    def publish(self, topic: str, value: bytes, key: bytes | None = None,
                headers: Headers | None = None) -> None:
        self.sink.append((topic, value, key, headers))

    def flush(self, timeout_s: float) -> DeliveryReport:
        return DeliveryReport(len(self.sink), 0, 0, 0)

    def prepare(self, topics: Any) -> None:
        pass

    def close(self, timeout_s: float | None = None) -> DeliveryReport:
        return DeliveryReport(len(self.sink), 0, 0, 0)

    def connection_state(self) -> ConnectionState:
        return ConnectionState.READY


def capture_cycle(settings: Settings, pair: tuple[str, str] = ("CONFIGURE", "RESET"),
                  workflow: Workflow | None = None, envs: int = 1) -> list[Message]:
    """The messages one ``pair`` cycle publishes through both built-ins with ``settings``,
    byte for byte, recorded by an in-process host whose core-kafka and legacy plugin publish
    nothing (core-kafka's ``encode``; the legacy plugin with a recording publisher)."""
    sink: list[Message] = []
    _capture(settings, pair, workflow, envs, sink, sink, [])
    return sink


def capture_records(settings: Settings, pair: tuple[str, str] = ("CONFIGURE", "RESET"),
                    envs: int = 1) -> tuple[list[object], list[Message]]:
    """What one ``pair`` cycle over ``envs`` environments gives the plugins: the hook records
    core-kafka receives, in order, and the messages the legacy plugin publishes."""
    records: list[object] = []
    legacy: list[Message] = []
    _capture(settings, pair, None, envs, [], legacy, records)
    return records, legacy


def _capture(settings: Settings, pair: tuple[str, str], workflow: Workflow | None, envs: int,
             core_sink: list[Message], legacy_sink: list[Message],
             records: list[object]) -> None:
    host = PluginHost(settings, entry_points=[], extra_plugins={
        "core-kafka": lambda context: _CoreRecorder(core_sink, context.settings, records),
        "kafka": lambda context: KafkaPlugin(
            context, publisher_factory=lambda servers, config: _RecordingPublisher(legacy_sink)),
    })
    host.start()
    try:
        with manager_for(host, workflow) as manager:
            ids = deployed_environments(manager, envs)
            core_sink.clear()
            legacy_sink.clear()
            records.clear()
            for env_id in ids:
                manager.transition(env_id, pair[0])
                manager.transition(env_id, pair[1])
    finally:
        host.stop(timeout_s=1)


def create_topics(bootstrap: str, topics: Sequence[str], timeout_s: float = 30.0) -> None:
    """Create ``topics`` (one partition, one replica) on ``bootstrap``; existing ones are kept."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    for topic, future in admin.create_topics([NewTopic(t, 1, 1) for t in topics]).items():
        try:
            future.result(timeout_s)
        except confluent_kafka.KafkaException as exc:
            if exc.args[0].code() != confluent_kafka.KafkaError.TOPIC_ALREADY_EXISTS:
                raise SystemExit(f"cannot create topic {topic}: {exc}") from None


def delete_topics(bootstrap: str, root: str, timeout_s: float = 60.0) -> int:
    """Delete every topic under ``root.`` on ``bootstrap`` (bench hygiene); how many."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    names = [t for t in admin.list_topics(timeout=timeout_s).topics if t.startswith(f"{root}.")]
    if names:
        for future in admin.delete_topics(names, operation_timeout=timeout_s).values():
            with contextlib.suppress(Exception):
                future.result()
    return len(names)


@contextlib.contextmanager
def manager_for(
    host: PluginHost, workflow: Workflow | None = None
) -> Iterator[EnvironmentManager]:
    """An environment manager on ``host`` with a throw-away run-number file; ``workflow``
    replaces the default workflow (legacy kafka calls)."""
    with tempfile.TemporaryDirectory(prefix="aliecs-bench-") as tmp:
        manager = EnvironmentManager(host, settings_runtime_vars=host.settings.runtime_vars,
                                     run_numbers=RunNumberStore(Path(tmp) / "run_number"),
                                     default_workflow=workflow)
        try:
            yield manager
        finally:
            manager.close()


ENV_VARIABLES = {"kafka_enabled": "true", "readout_cfg_uri": "consul://o2/readout",
                 "dcs_enabled": "true", "odc_topology": "o2/topology/readout-2flp"}
"""Variables of the benchmark environments: the legacy calls publish (kafka_enabled)."""


def deployed_environments(manager: EnvironmentManager, count: int) -> list[str]:
    """``count`` environments created and deployed, ready for CONFIGURE/RESET cycles."""
    ids = []
    for i in range(count):  # a detector belongs to one environment at a time
        env = manager.create(detectors=(f"TPC{i}", f"ITS{i}"), run_type="PHYSICS",
                             variables=ENV_VARIABLES)
        manager.transition(env.id, "DEPLOY")
        ids.append(env.id)
    return ids


# --------------------------------------------------------------------------- numbers
def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values (q in 0..100)."""
    if not sorted_values:
        return float("nan")
    rank = max(1, -(-len(sorted_values) * q // 100))
    return float(sorted_values[min(len(sorted_values), int(rank)) - 1])


def ratio(value: float, baseline: float) -> float:
    return value / baseline if baseline else float("nan")


def rss_bytes(pid: int | None = None) -> int:
    """Resident set size of ``pid`` (default: this process), from /proc."""
    path = f"/proc/{pid or 'self'}/status"
    with open(path) as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS in {path}")


def machine() -> dict[str, Any]:
    """nproc, CPU model, RAM, load, and the versions that matter."""
    model = "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_kb = 0
    with contextlib.suppress(OSError), open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    return {
        "nproc": os.cpu_count(), "cpu": model, "ram_gib": round(mem_kb / 2**20, 1),
        "loadavg_at_start": os.getloadavg(), "python": platform.python_version(),
        "confluent_kafka": confluent_kafka.__version__,
        "librdkafka": confluent_kafka.libversion()[0],
    }


def write_result(name: str, payload: Mapping[str, Any]) -> Path:
    """Write ``bench/results/<name>.json`` (with the machine and the time) and return it."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    document = {"benchmark": name, "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "machine": machine(), **payload}
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")
    print(f"\nresults written to {path.relative_to(REPO)}")
    return path


def verdict(met: bool) -> str:
    return "MET" if met else "NOT MET"
