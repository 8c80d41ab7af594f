"""Kafka topics: the names of both producers, the key rule, and the message type each topic
carries (``docs/events.md``). Their creation is :mod:`aliecs_integration.publish.topic_admin`'s
(:func:`create_topics`, :class:`TopicCreator`, re-exported here).

Names are ``<root>.<rest>`` with ``.`` as separator; the root is ``aliecs`` unless the
settings key ``kafkaProducer.topicRoot`` says otherwise (tests use a unique root each).
:class:`TopicNames` builds every name for one root; the module-level constants and functions
are the names under the default root.
"""

from __future__ import annotations

import functools
import re

import attrs
from google.protobuf.message import Message

from aliecs_integration import names
from aliecs_integration.pb import events_pb2, kafka_pb2

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

_STATE = re.compile(r"^[A-Z][A-Z_]*$")
_ROOT = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")
_EVENT_SUFFIXES = ("core", "environment", "task", "role", "call", "run")
_NOTIFICATION_SUFFIXES = ("before_start_activity", "after_start_activity", "start_activity")


@functools.lru_cache(maxsize=1024)
def _service_topic(root: str, service: str) -> str:
    """The checked topic of ``service`` under ``root`` (cached: it is on every integrated-service
    event's path; only valid names are cached, a bad one raises each time)."""
    if not isinstance(service, str) or service != service.strip().lower():
        raise names.InvalidName(
            f"integrated service name {service!r}: expected non-empty lower-case "
            "letters, digits, '_' or '-'"
        )
    return names.topic_name(f"{root}.integrated_service.{names.service_name(service)}")


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
        return _service_topic(self.root, service)

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



def key_for(identifier: str) -> bytes | None:
    """The message key for an id: its UTF-8 bytes, or ``None`` (no key) when it is empty."""
    return identifier.encode() if identifier else None


def standard_topics(root: str = DEFAULT_ROOT) -> list[str]:
    """Every core and legacy topic under ``root``."""
    return TopicNames(root).standard_topics()


def message_type_for_topic(topic: str, root: str = DEFAULT_ROOT) -> type[Message]:
    """The message class ``topic`` carries; ``ValueError`` naming an unknown topic."""
    return TopicNames(root).message_type_for_topic(topic)
