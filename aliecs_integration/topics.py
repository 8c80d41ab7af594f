"""Kafka topics: the names of both producers, the key rule, the message type each topic
carries (spec ``topics.md``), and their creation (:func:`create_topics`).

Names are ``<root>.<rest>`` with ``.`` as separator; the root is ``aliecs`` unless the
settings key ``kafkaProducer.topicRoot`` says otherwise (tests use a unique root each).
:class:`TopicNames` builds every name for one root; the module-level constants and functions
are the names under the default root.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any

import attrs
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.cimpl import NewTopic  # documented as confluent_kafka.admin.NewTopic
from google.protobuf.message import Message

from aliecs_integration.metrics import RateLimitedLog
from aliecs_integration.pb import events_pb2, kafka_pb2

log = logging.getLogger(__name__)

DEFAULT_ROOT = "aliecs"

#: The integrated services in use today; any plugin may add its own.
KNOWN_SERVICES: tuple[str, ...] = ("dcs", "ddsched", "odc", "trg")
#: States the legacy plugin announces on ``env_state.<STATE>`` (DONE included).
ENTER_STATES: tuple[str, ...] = (
    "STANDBY",
    "DEPLOYED",
    "CONFIGURED",
    "RUNNING",
    "ERROR",
    "UNKNOWN",
    "DONE",
)
#: States the legacy plugin announces on ``env_leave_state.<STATE>``.
LEAVE_STATES: tuple[str, ...] = ("STANDBY", "DEPLOYED", "CONFIGURED", "RUNNING", "ERROR")

_SERVICE = re.compile(r"^[a-z0-9_-]+$")
_STATE = re.compile(r"^[A-Z][A-Z_]*$")
_ROOT = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")
_EVENT_SUFFIXES = ("core", "environment", "task", "role", "call", "run")
_NOTIFICATION_SUFFIXES = ("before_start_activity", "after_start_activity", "start_activity")


def _check_root(root: str) -> str:
    if not _ROOT.match(root):
        raise ValueError(f"topic root {root!r}: expected dot-separated words of [A-Za-z0-9_-]")
    return root


@attrs.frozen
class TopicNames:
    """Every topic name under one root (``TopicNames("aliecs").environment``)."""

    root: str = attrs.field(default=DEFAULT_ROOT, converter=_check_root)

    @property
    def core(self) -> str:
        return f"{self.root}.core"

    @property
    def environment(self) -> str:
        return f"{self.root}.environment"

    @property
    def task(self) -> str:
        return f"{self.root}.task"

    @property
    def role(self) -> str:
        return f"{self.root}.role"

    @property
    def call(self) -> str:
        return f"{self.root}.call"

    @property
    def run(self) -> str:
        return f"{self.root}.run"

    def integrated_service(self, service: str) -> str:
        """``<root>.integrated_service.<service>``; raises ``ValueError`` naming a bad service
        name (it must be non-empty lower-case ``[a-z0-9_-]``)."""
        if not isinstance(service, str) or not _SERVICE.match(service):
            raise ValueError(
                f"integrated service name {service!r}: expected non-empty lower-case "
                "letters, digits, '_' or '-'"
            )
        return f"{self.root}.integrated_service.{service}"

    def env_state(self, state: str) -> str:
        """Legacy ``<root>.env_state.<STATE>``; raises ``ValueError`` unless upper-case."""
        return f"{self.root}.env_state.{_check_state(state)}"

    def env_leave_state(self, state: str) -> str:
        """Legacy ``<root>.env_leave_state.<STATE>``; raises ``ValueError`` unless upper-case."""
        return f"{self.root}.env_leave_state.{_check_state(state)}"

    @property
    def env_list_running(self) -> str:
        return f"{self.root}.env_list.RUNNING"

    @property
    def before_start_activity(self) -> str:
        return f"{self.root}.before_start_activity"

    @property
    def after_start_activity(self) -> str:
        return f"{self.root}.after_start_activity"

    @property
    def start_activity(self) -> str:
        return f"{self.root}.start_activity"

    def core_topics(self) -> list[str]:
        """Every core-kafka topic, the four known integrated services included."""
        return [
            self.core,
            self.environment,
            self.task,
            self.role,
            self.call,
            self.run,
            *(self.integrated_service(s) for s in KNOWN_SERVICES),
        ]

    def legacy_topics(self) -> list[str]:
        """Every topic of the legacy kafka plugin."""
        return [
            *(self.env_state(s) for s in ENTER_STATES),
            *(self.env_leave_state(s) for s in LEAVE_STATES),
            self.env_list_running,
            self.before_start_activity,
            self.after_start_activity,
            self.start_activity,
        ]

    def standard_topics(self) -> list[str]:
        """Every core and legacy topic (what ``topics create`` creates)."""
        return self.core_topics() + self.legacy_topics()

    def message_type_for_topic(self, topic: str) -> type[Message]:
        """The message class a topic carries: ``events.Event`` on core topics,
        ``kafka.NewStateNotification`` or ``kafka.ActiveRunsList`` on legacy ones.

        Raises ``ValueError`` naming the topic when it is not one of this root's topics.
        """
        prefix = f"{self.root}."
        rest = topic[len(prefix) :] if topic.startswith(prefix) else None
        if rest is not None:
            head, _, tail = rest.partition(".")
            if (rest in _EVENT_SUFFIXES) or (head == "integrated_service" and tail):
                return events_pb2.Event
            if (head in ("env_state", "env_leave_state") and tail) or rest in (
                _NOTIFICATION_SUFFIXES
            ):
                return kafka_pb2.NewStateNotification
            if head == "env_list" and tail:
                return kafka_pb2.ActiveRunsList
        raise ValueError(
            f"topic {topic!r}: not a topic of root {self.root!r} (expected {self.root}.core, "
            f".environment, .task, .role, .call, .run, .integrated_service.<service>, "
            f".env_state.<STATE>, .env_leave_state.<STATE>, .env_list.<STATE> or "
            f".[before_|after_]start_activity)"
        )


def _check_state(state: str) -> str:
    if not isinstance(state, str) or not _STATE.match(state):
        raise ValueError(f"state {state!r}: expected an upper-case state name such as RUNNING")
    return state


DEFAULT = TopicNames()

CORE = DEFAULT.core
ENVIRONMENT = DEFAULT.environment
TASK = DEFAULT.task
ROLE = DEFAULT.role
CALL = DEFAULT.call
RUN = DEFAULT.run
ENV_LIST_RUNNING = DEFAULT.env_list_running
BEFORE_START_ACTIVITY = DEFAULT.before_start_activity
AFTER_START_ACTIVITY = DEFAULT.after_start_activity
START_ACTIVITY = DEFAULT.start_activity


def integrated_service_topic(service: str) -> str:
    """``aliecs.integrated_service.<service>``; ``ValueError`` naming a bad service name."""
    return DEFAULT.integrated_service(service)


def env_state_topic(state: str) -> str:
    """``aliecs.env_state.<STATE>``; ``ValueError`` unless ``state`` is upper-case."""
    return DEFAULT.env_state(state)


def env_leave_state_topic(state: str) -> str:
    """``aliecs.env_leave_state.<STATE>``; ``ValueError`` unless ``state`` is upper-case."""
    return DEFAULT.env_leave_state(state)


def key_for(identifier: str) -> bytes | None:
    """The message key for an id: its UTF-8 bytes, or ``None`` (no key) when it is empty."""
    return identifier.encode() if identifier else None


def standard_topics(root: str = DEFAULT_ROOT) -> list[str]:
    """Every core and legacy topic under ``root``."""
    return TopicNames(root).standard_topics()


def message_type_for_topic(topic: str, root: str = DEFAULT_ROOT) -> type[Message]:
    """The message class ``topic`` carries; ``ValueError`` naming an unknown topic."""
    return TopicNames(root).message_type_for_topic(topic)


#: CreateTopics errors that retrying cannot fix.
_PERMANENT = frozenset(
    {
        KafkaError.TOPIC_EXCEPTION,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.CLUSTER_AUTHORIZATION_FAILED,
        KafkaError.POLICY_VIOLATION,
        KafkaError.INVALID_PARTITIONS,
        KafkaError.INVALID_CONFIG,
    }
)


@attrs.frozen
class TopicCreation:
    """Outcome of :func:`create_topics`: topics ``created`` now, ``existing`` before, and
    ``failed`` (topic → reason) refused for good; ``replication_factor`` actually used."""

    created: tuple[str, ...] = ()
    existing: tuple[str, ...] = ()
    failed: Mapping[str, str] = attrs.field(factory=lambda: MappingProxyType({}))
    replication_factor: int = 0


def create_topics(
    admin: Any,
    topics: Iterable[str],
    *,
    partitions: int,
    replication_factor: int,
    timeout_s: float = 5.0,
) -> TopicCreation:
    """Create those of ``topics`` missing in the cluster and wait (up to ``timeout_s``) until
    every partition of each has a leader. ``admin`` is a ``confluent_kafka.admin.AdminClient``.

    The replication factor is clamped to the number of brokers, with a logged warning; a
    topic created meanwhile by someone else counts as existing. Raises ``KafkaException`` for
    errors worth retrying (cluster unreachable, timeouts); a permanent refusal (invalid name,
    authorization, policy) is returned in ``failed`` instead.
    """
    wanted = sorted(set(topics))
    meta = admin.list_topics(timeout=timeout_s)
    existing = [t for t in wanted if t in meta.topics]
    missing = [t for t in wanted if t not in meta.topics]
    brokers = max(1, len(meta.brokers))
    replicas = min(replication_factor, brokers)
    if not missing:
        return TopicCreation(existing=tuple(existing), replication_factor=replicas)
    if replicas < replication_factor:
        log.warning(
            "creating %s with replication factor %d instead of %d: the cluster has %d broker(s)",
            ", ".join(missing),
            replicas,
            replication_factor,
            brokers,
        )
    futures = admin.create_topics(
        [NewTopic(t, num_partitions=partitions, replication_factor=replicas) for t in missing],
        operation_timeout=timeout_s,
        request_timeout=timeout_s,
    )
    created: list[str] = []
    failed: dict[str, str] = {}
    for topic, future in sorted(futures.items()):
        try:
            future.result()
            created.append(topic)
        except KafkaException as exc:
            code = exc.args[0].code()
            if code in _PERMANENT:
                failed[topic] = str(exc.args[0].str())
            elif code == KafkaError.TOPIC_ALREADY_EXISTS:
                existing.append(topic)
            else:
                raise
    _await_leaders(admin, created, timeout_s)
    return TopicCreation(
        tuple(created), tuple(sorted(existing)), MappingProxyType(failed), replicas
    )


def _await_leaders(admin: Any, topics: list[str], timeout_s: float) -> None:
    """Wait until each topic's metadata shows a leader for every partition (bounded)."""
    deadline = time.monotonic() + timeout_s
    for topic in topics:
        while time.monotonic() < deadline:
            info = admin.list_topics(topic=topic, timeout=timeout_s).topics.get(topic)
            if (
                info is not None
                and info.error is None
                and info.partitions
                and all(p.leader >= 0 for p in info.partitions.values())
            ):
                break
            time.sleep(0.05)


class TopicCreator:
    """A daemon thread creating the topics asked for with :func:`create_topics`, retrying with
    backoff (0.5 s to 10 s) while the cluster is unreachable. Started at construction.

    Callbacks run on that thread: ``on_created(topics)`` with topics that now exist,
    ``on_failed(topic, reason)`` for a permanent refusal, ``on_reachable(ok)`` after each
    metadata request. While ``wants_probe()`` is true the cluster is also asked for metadata
    every ``probe_interval_s`` even when no topic is wanted (to notice it is back).
    """

    def __init__(
        self,
        admin: Any,
        *,
        partitions: int,
        replication_factor: int,
        name: str,
        on_created: Callable[[set[str]], None],
        on_failed: Callable[[str, str], None],
        on_reachable: Callable[[bool], None],
        wants_probe: Callable[[], bool] = lambda: False,
        timeout_s: float = 5.0,
        probe_interval_s: float = 5.0,
    ) -> None:
        self.admin, self.name, self.timeout_s = admin, name, timeout_s
        self.partitions, self.replication_factor = partitions, replication_factor
        self._on_created, self._on_failed = on_created, on_failed
        self._on_reachable, self._wants_probe = on_reachable, wants_probe
        self._probe_interval_s = probe_interval_s
        self._cond = threading.Condition()
        self._requested: set[str] = set()
        self._stop = threading.Event()
        self._errors = RateLimitedLog(log, logging.WARNING)
        self._thread = threading.Thread(target=self._run, name=f"{name}-topics", daemon=True)
        self._thread.start()

    def request(self, topics: Iterable[str]) -> None:
        """Ask for ``topics`` to exist (no-op for those already asked for)."""
        with self._cond:
            new = set(topics) - self._requested
            if new:
                self._requested |= new
                self._cond.notify_all()

    def stop(self, timeout_s: float) -> None:
        """Stop the thread; wait for it up to ``timeout_s`` (it may be inside a request, after
        which it calls nothing more)."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        self._thread.join(timeout_s)

    def _run(self) -> None:
        backoff, last_probe = 0.5, -self._probe_interval_s
        while not self._stop.is_set():
            probe = self._wants_probe() and (
                time.monotonic() - last_probe >= self._probe_interval_s
            )
            with self._cond:
                if not self._requested and not probe:
                    self._cond.wait(min(1.0, self._probe_interval_s))
                    continue
                todo = set(self._requested)
            last_probe = time.monotonic()
            try:
                result = create_topics(
                    self.admin,
                    todo,
                    partitions=self.partitions,
                    replication_factor=self.replication_factor,
                    timeout_s=self.timeout_s,
                )
            except Exception as exc:  # KafkaException mostly; the thread must go on anyway
                if self._stop.is_set():
                    return
                self._on_reachable(False)
                self._errors.note(
                    "%s: cannot create topics %s yet, retrying: %s", self.name, sorted(todo), exc
                )
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            backoff = 0.5
            if self._stop.is_set():
                return
            self._on_reachable(True)
            done = set(result.created) | set(result.existing)
            with self._cond:
                self._requested -= done | set(result.failed)
            for topic in result.created:
                log.info("%s: created topic %s", self.name, topic)
            for topic, reason in result.failed.items():
                self._on_failed(topic, reason)
            if done:
                self._on_created(done)
