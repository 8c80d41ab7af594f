"""Pytest plugin: real Kafka and Consul servers for the test suite.

Loaded from ``tests/conftest.py`` (``pytest_plugins = ["tests.servers"]``).

Session fixtures start the servers through ``dev/kafka`` and ``dev/consul`` (with
:mod:`aliecs_integration.devservers`, as the demo does) when they are not already
running, and stop at the end of the session only what a test session started
(reference-counted across concurrent pytest processes on the same machine, so one
session never stops a server another one still uses).
A server that was already running (started by hand) is reused and left alone.

Environment variables naming servers that are already up (nothing is started
or stopped then):

* ``ALIECS_TEST_KAFKA``          bootstrap of a single broker, e.g. ``127.0.0.1:19092``
* ``ALIECS_TEST_KAFKA_CLUSTER``  bootstrap of a 3-node cluster
* ``ALIECS_TEST_KAFKA_SASL``     ``host:port,user,password`` of a SASL/PLAIN broker
* ``ALIECS_TEST_CONSUL``         ``host:port`` of a Consul HTTP API

Tests using a server fixture are marked automatically (``kafka``,
``kafka_cluster``, ``consul``), so ``-m "not kafka and not consul"`` runs unit
tests only.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from aliecs_integration.devservers import (
    DEV_CONSUL_ADDRESS,
    DEV_KAFKA_BOOTSTRAP,
    DEV_KAFKA_CLUSTER_BOOTSTRAP,
    DEV_KAFKA_CLUSTER_NODES,
    DEV_KAFKA_SASL_BOOTSTRAP,
    DEV_KAFKA_SASL_PASSWORD,
    DEV_KAFKA_SASL_USER,
    DevServer,
    dev_consul,
    dev_kafka,
)
from aliecs_integration.errors import DevServerError

if TYPE_CHECKING:
    import consul

RUN_DIR = Path(
    os.environ.get("ALIECS_RUN") or Path.home() / ".cache" / "aliecs-integration" / "run"
)

CONSUL_ACL_ADDRESS = "127.0.0.1:18510"
CONSUL_ACL_MANAGEMENT_TOKEN = "aliecs-dev-management-token"
"""The management token of ``dev/consul start --acl`` (a test agent's, not a secret)."""

# fixture name -> markers applied to every test that (transitively) uses it
FIXTURE_MARKERS: dict[str, tuple[str, ...]] = {
    "kafka_bootstrap": ("kafka",),
    "kafka_broker": ("kafka",),
    "kafka_cluster_bootstrap": ("kafka", "kafka_cluster"),
    "kafka_cluster": ("kafka", "kafka_cluster"),
    "kafka_sasl": ("kafka", "kafka_sasl"),
    "consul_address": ("consul",),
    "consul_client": ("consul",),
    "consul_acl_address": ("consul",),
}

MARKERS = {
    "kafka": "needs a Kafka broker (started automatically, or ALIECS_TEST_KAFKA)",
    "kafka_cluster": "needs the 3-node Kafka cluster (or ALIECS_TEST_KAFKA_CLUSTER)",
    "kafka_sasl": "needs the SASL/PLAIN Kafka broker (or ALIECS_TEST_KAFKA_SASL)",
    "consul": "needs a Consul agent (started automatically, or ALIECS_TEST_CONSUL)",
    "reliability": "failure-injection / delivery-guarantee tests",
    "slow": "takes more than a few seconds",
}


# --------------------------------------------------------------------------- hooks
def pytest_configure(config: pytest.Config) -> None:
    for name, doc in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {doc}")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        for fixture, markers in FIXTURE_MARKERS.items():
            if fixture in names:
                for marker in markers:
                    if item.get_closest_marker(marker) is None:
                        item.add_marker(getattr(pytest.mark, marker))


# --------------------------------------------------------------------------- server control
def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class ManagedServer:
    """A dev server (:class:`~aliecs_integration.devservers.DevServer`) started on demand and
    shared by pytest sessions.

    ``$ALIECS_RUN/test-users/<key>/`` holds one file per pytest process using the
    server; ``<key>.owned`` marks a server that a test session started. The last
    user of a test-started server stops it.
    """

    key: str
    server: DevServer
    start_args: tuple[str, ...] = ()
    registered: bool = field(default=False, init=False)

    @property
    def _users(self) -> Path:
        return RUN_DIR / "test-users" / self.key

    @property
    def _owned(self) -> Path:
        return RUN_DIR / "test-users" / f"{self.key}.owned"

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        self._users.mkdir(parents=True, exist_ok=True)
        with open(RUN_DIR / "test-users" / f"{self.key}.lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def acquire(self) -> None:
        with self._lock():
            if not self.server.running():
                # marked owned before starting, so an interrupted start is cleaned up later
                self._owned.write_text(f"{os.getpid()}\n")
                try:
                    self.server.start(*self.start_args)
                except DevServerError:
                    with contextlib.suppress(DevServerError):
                        self.server.stop()
                    self._owned.unlink(missing_ok=True)
                    raise
            (self._users / str(os.getpid())).touch()
            self.registered = True

    def release(self) -> None:
        if not self.registered:
            return
        with self._lock():
            (self._users / str(os.getpid())).unlink(missing_ok=True)
            self.registered = False
            others = [p for p in self._users.iterdir() if p.name.isdigit()]
            live = [p for p in others if _pid_alive(int(p.name))]
            for stale in set(others) - set(live):
                stale.unlink(missing_ok=True)
            if not live and self._owned.exists():
                with contextlib.suppress(DevServerError):
                    self.server.stop()
                self._owned.unlink(missing_ok=True)


@contextlib.contextmanager
def _managed(key: str, server: DevServer, start_args: tuple[str, ...] = ()) -> Iterator[None]:
    managed = ManagedServer(key, server, start_args)
    managed.acquire()
    try:
        yield
    finally:
        managed.release()


# --------------------------------------------------------------------------- kafka
@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """Bootstrap servers of a single Kafka broker (auto topic creation is off)."""
    external = os.environ.get("ALIECS_TEST_KAFKA")
    if external:
        yield external
        return
    # --fresh: a test-started broker begins with empty data (only applies when
    # it is not running yet; a running broker is reused as is).
    with _managed("kafka-single", dev_kafka(), ("--fresh",)):
        yield DEV_KAFKA_BOOTSTRAP


@pytest.fixture(scope="session")
def kafka_cluster_bootstrap() -> Iterator[str]:
    """Bootstrap servers of the 3-node Kafka cluster (node ids 1..3)."""
    external = os.environ.get("ALIECS_TEST_KAFKA_CLUSTER")
    if external:
        yield external
        return
    with _managed("kafka-cluster", dev_kafka(cluster=True), ("--fresh",)):
        yield DEV_KAFKA_CLUSTER_BOOTSTRAP


@dataclass
class SingleBroker:
    """Handle on the single dev broker for outage tests: ``stop``/``start`` call
    ``dev/kafka stop``/``start`` (data kept) and return how long they took; the
    ``kafka_broker`` fixture starts the broker again if a test left it stopped."""

    bootstrap: str
    server: DevServer = field(default_factory=dev_kafka)
    stopped: bool = False

    def stop(self) -> float:
        started = time.monotonic()
        self.stopped = True
        self.server.stop()
        return time.monotonic() - started

    def start(self) -> float:
        started = time.monotonic()
        self.server.start()
        self.stopped = False
        return time.monotonic() - started

    def running(self) -> bool:
        return self.server.running()


@pytest.fixture
def kafka_broker(kafka_bootstrap: str) -> Iterator[SingleBroker]:
    """The single broker as a :class:`SingleBroker` a test may stop and start; skips the test
    when ``ALIECS_TEST_KAFKA`` names an external broker (not ours to stop)."""
    if os.environ.get("ALIECS_TEST_KAFKA"):
        pytest.skip("ALIECS_TEST_KAFKA names an external broker: it is not stopped by tests")
    broker = SingleBroker(kafka_bootstrap)
    try:
        yield broker
    finally:
        if broker.stopped:
            broker.start()


@dataclass(frozen=True)
class SaslKafka:
    """A broker whose client listener needs SASL/PLAIN (``dev/kafka --sasl``)."""

    bootstrap: str
    username: str
    password: str

    def properties(self) -> dict[str, str]:
        """librdkafka properties that authenticate (without ``bootstrap.servers``)."""
        return {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN",
                "sasl.username": self.username, "sasl.password": self.password}


@pytest.fixture(scope="session")
def kafka_sasl() -> Iterator[SaslKafka]:
    """The single-node SASL_PLAINTEXT broker (PLAIN; auto topic creation off).

    ``ALIECS_TEST_KAFKA_SASL=host:port,user,password`` uses an external one instead.
    """
    external = os.environ.get("ALIECS_TEST_KAFKA_SASL")
    if external:
        bootstrap, user, password = external.split(",", 2)
        yield SaslKafka(bootstrap, user, password)
        return
    with _managed("kafka-sasl", dev_kafka(sasl=True), ("--fresh",)):
        yield SaslKafka(DEV_KAFKA_SASL_BOOTSTRAP, DEV_KAFKA_SASL_USER, DEV_KAFKA_SASL_PASSWORD)


@dataclass
class KafkaCluster:
    """Handle on the 3-node dev cluster for failover tests.

    Node ids equal broker ids (1..3). ``kill_node``/``start_node`` call
    ``dev/kafka kill-node N`` / ``start-node N``; the ``kafka_cluster`` fixture
    restarts any node a test left down.
    """

    bootstrap: str
    local: bool = True  # started/managed by dev/kafka (False: ALIECS_TEST_KAFKA_CLUSTER)
    killed: set[int] = field(default_factory=set)
    nodes: tuple[int, ...] = (1, 2, 3)

    server: DevServer = field(default_factory=lambda: dev_kafka(cluster=True))

    def address(self, node: int) -> str:
        return DEV_KAFKA_CLUSTER_NODES[node]

    def kill_node(self, node: int, graceful: bool = False) -> None:
        """SIGKILL node ``node`` (SIGTERM + wait with ``graceful=True``)."""
        self.server.check("kill-node", str(node), *(["--graceful"] if graceful else []),
                          timeout=120)
        self.killed.add(node)

    def start_node(self, node: int) -> None:
        """Start node ``node`` again; returns once it is back in the cluster metadata."""
        self.server.check("start-node", str(node), timeout=300)
        self.killed.discard(node)

    def down_nodes(self) -> list[int]:
        """Nodes of the local dev cluster whose process is not running."""
        return [
            int(line.split()[3].rstrip(":"))
            for line in self.server.status().splitlines()
            if line.startswith("kafka cluster node") and "not running" in line
        ]

    def restore(self) -> None:
        """Start every node this handle killed (and, for the local dev cluster,
        any other node that is down)."""
        down = set(self.killed) | (set(self.down_nodes()) if self.local else set())
        for node in sorted(down):
            self.start_node(node)

    def admin(self) -> Any:
        from confluent_kafka.admin import AdminClient

        return AdminClient({"bootstrap.servers": self.bootstrap})

    def partition_metadata(self, topic: str, partition: int = 0, timeout: float = 10.0) -> Any:
        """``PartitionMetadata`` (leader, replicas, isrs) of ``topic``/``partition``."""
        md = self.admin().list_topics(topic=topic, timeout=timeout)
        tmd = md.topics.get(topic)
        if tmd is None or tmd.error is not None or partition not in tmd.partitions:
            raise LookupError(f"no metadata for {topic}[{partition}]: {tmd and tmd.error}")
        return tmd.partitions[partition]

    def leader_of(
        self,
        topic: str,
        partition: int = 0,
        timeout: float = 30.0,
        exclude: frozenset[int] | set[int] = frozenset(),
    ) -> int:
        """Node id leading ``topic``/``partition``; waits (up to ``timeout``) for a
        leader that is not in ``exclude`` (e.g. the node just killed)."""
        deadline = time.monotonic() + timeout
        last: object = None
        while True:
            try:
                leader = int(self.partition_metadata(topic, partition).leader)
                if leader >= 0 and leader not in exclude:
                    return leader
                last = leader
            except Exception as exc:  # metadata requests may fail mid-failover
                last = exc
            if time.monotonic() > deadline:
                raise TimeoutError(f"no leader for {topic}[{partition}] within {timeout}s: {last}")
            time.sleep(0.3)


def wait_for_topic(
    admin: Any, topic: str, partitions: int | None = None, timeout: float = 30.0
) -> Any:
    """Poll ``admin.list_topics`` until ``topic`` is known to the broker answering
    (with ``partitions`` partitions that all have a leader) and return its
    ``TopicMetadata``. Topic creation is acknowledged by the controller before
    every broker has the new metadata, so call this after ``create_topics``."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            tmd = admin.list_topics(topic=topic, timeout=5).topics.get(topic)
            if tmd is not None and tmd.error is None and tmd.partitions:
                ready = all(p.leader >= 0 for p in tmd.partitions.values())
                if ready and (partitions is None or len(tmd.partitions) == partitions):
                    return tmd
            last = tmd and tmd.error
        except Exception as exc:  # transient broker errors while metadata settles
            last = exc
        if time.monotonic() > deadline:
            raise TimeoutError(f"topic {topic} not visible within {timeout}s: {last}")
        time.sleep(0.2)


@pytest.fixture
def kafka_cluster(kafka_cluster_bootstrap: str) -> Iterator[KafkaCluster]:
    """The 3-node cluster; nodes killed by the test are started again afterwards."""
    local = not os.environ.get("ALIECS_TEST_KAFKA_CLUSTER")
    cluster = KafkaCluster(kafka_cluster_bootstrap, local=local)
    try:
        yield cluster
    finally:
        cluster.restore()


# --------------------------------------------------------------------------- consul
@pytest.fixture(scope="session")
def consul_address() -> Iterator[str]:
    """``host:port`` of a Consul HTTP API (a ``consul agent -dev``)."""
    external = os.environ.get("ALIECS_TEST_CONSUL")
    if external:
        yield external.removeprefix("http://")
        return
    with _managed("consul", dev_consul()):
        yield DEV_CONSUL_ADDRESS


@pytest.fixture(scope="session")
def consul_acl_address() -> Iterator[str]:
    """``host:port`` of a second Consul agent with ACLs on (default policy deny; management
    token :data:`CONSUL_ACL_MANAGEMENT_TOKEN`), started by ``dev/consul start --acl``."""
    plain = dev_consul()
    with _managed("consul-acl", DevServer("consul-acl", plain.script, ("--acl",))):
        yield CONSUL_ACL_ADDRESS


@pytest.fixture(scope="session")
def consul_client(consul_address: str) -> consul.Consul:
    """A py-consul client for ``consul_address``."""
    import consul as consul_mod

    host, _, port = consul_address.rpartition(":")
    return consul_mod.Consul(host=host, port=int(port))


# --------------------------------------------------------------------------- names
@dataclass
class UniqueTopics:
    """Factory for per-test Kafka topic / Consul key names under one random root.

    ``unique_topic()`` -> ``aliecs.t3f9c2a1b0d4e.topic``; ``unique_topic("runs")``
    -> ``aliecs.t3f9c2a1b0d4e.runs``; repeated names get ``-2``, ``-3``, ...
    """

    prefix: str
    issued: dict[str, int] = field(default_factory=dict)

    def __call__(self, name: str = "topic") -> str:
        n = self.issued.get(name, 0) + 1
        self.issued[name] = n
        return f"{self.prefix}.{name}" if n == 1 else f"{self.prefix}.{name}-{n}"


_counter = itertools.count()


@pytest.fixture
def topic_prefix() -> str:
    """A root unique to this test, e.g. ``aliecs.t3f9c2a1b0d4e`` (legal as a Kafka
    topic prefix and as a Consul key prefix)."""
    return f"aliecs.t{uuid.uuid4().hex[:10]}{next(_counter):02x}"


@pytest.fixture
def unique_topic(topic_prefix: str) -> Callable[..., str]:
    """Callable giving topic names unique to this test under ``topic_prefix``."""
    return UniqueTopics(topic_prefix)
