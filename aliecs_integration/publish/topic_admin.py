"""Topic creation: :func:`create_topics` (once, with a given admin client),
:func:`ensure_topics` (the same from settings, for ``topics create``) and :class:`TopicCreator`
(the publisher's background thread, retrying while the cluster is unreachable). Broker
auto-creation is never relied on.

Log records go to the logger ``aliecs_integration.publish.topics`` (the module this code came from:
logging configurations name it).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

import attrs
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.cimpl import NewTopic  # documented as confluent_kafka.admin.NewTopic

from aliecs_integration.errors import BrokerUnreachable
from aliecs_integration.log_limits import RateLimitedLog
from aliecs_integration.settings.producer import ProducerConfig

log = logging.getLogger("aliecs_integration.publish.topics")


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
    try:
        futures = admin.create_topics(
            [NewTopic(t, num_partitions=partitions, replication_factor=replicas)
             for t in missing],
            operation_timeout=timeout_s,
            request_timeout=timeout_s,
        )
    except ValueError as exc:  # the client refuses the request itself: retrying cannot help
        reason = f"the Kafka client refused the request: {exc}"
        return TopicCreation(existing=tuple(existing),
                             failed=MappingProxyType({t: reason for t in missing}),
                             replication_factor=replicas)
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


def ensure_topics(
    bootstrap_servers: Sequence[str],
    config: ProducerConfig,
    wanted: Sequence[str],
    *,
    timeout_s: float,
    logger: logging.Logger | None = None,
) -> tuple[TopicCreation, dict[str, Any]]:
    """Create the missing ``wanted`` topics with the publisher's own rules (configured
    partitions, replication clamped to the brokers, wait for leaders) through an admin client
    built from ``config`` (the user's security properties included). Returns the
    :class:`TopicCreation` and the metadata of every topic afterwards. Raises
    :class:`~aliecs_integration.errors.BrokerUnreachable` naming the brokers when they do not
    answer within ``timeout_s``.
    """
    from confluent_kafka.admin import AdminClient

    client_config: dict[str, Any] = {**config.admin_config(bootstrap_servers)}
    client_config["logger"] = logger or logging.getLogger(__name__ + ".librdkafka")
    admin = AdminClient(client_config)
    try:
        outcome = create_topics(admin, wanted, partitions=config.partitions,
                                replication_factor=config.replication_factor,
                                timeout_s=timeout_s)
        metadata = admin.list_topics(timeout=timeout_s).topics
    except KafkaException as exc:
        raise BrokerUnreachable(
            f"cannot reach Kafka at {','.join(bootstrap_servers)} within {timeout_s:g} s "
            f"({exc.args[0].str()})") from exc
    return outcome, dict(metadata)


class TopicCreator:
    """A daemon thread creating the topics asked for with :func:`create_topics`, retrying with
    backoff (0.5 s to 10 s) while the cluster is unreachable. Started at construction.

    Callbacks run on that thread: ``on_created(topics)`` with topics that now exist,
    ``on_failed(topic, reason)`` for a permanent refusal, ``on_reachable(ok)`` after each
    metadata request. While ``wants_probe()`` is true the cluster is also asked for metadata
    every ``probe_interval_s`` even when no topic is wanted (to notice it is back).
    ``bootstrap_servers`` name the cluster in log messages. ``admin.poll(0)`` is called after
    each request: it hands the client's log lines to its ``logger``. A topic requested
    ``again`` (deleted under the producer) is re-created, then ``refresh(topic)`` runs before
    ``on_created`` so that the producer's own metadata knows the topic exists again.
    """

    def __init__(
        self,
        admin: Any,
        *,
        partitions: int,
        replication_factor: int,
        name: str,
        bootstrap_servers: Sequence[str],
        on_created: Callable[[set[str]], None],
        on_failed: Callable[[str, str], None],
        on_reachable: Callable[[bool], None],
        wants_probe: Callable[[], bool] = lambda: False,
        timeout_s: float = 5.0,
        probe_interval_s: float = 5.0,
        refresh: Callable[[str], object] = lambda topic: None,
    ) -> None:
        self.admin, self.name, self.timeout_s = admin, name, timeout_s
        self._refresh = refresh
        self.servers = ",".join(bootstrap_servers)
        self.partitions, self.replication_factor = partitions, replication_factor
        self._on_created, self._on_failed = on_created, on_failed
        self._on_reachable, self._wants_probe = on_reachable, wants_probe
        self._probe_interval_s = probe_interval_s
        self._cond = threading.Condition()
        self._requested: set[str] = set()
        self._recreate: set[str] = set()
        self._stop = threading.Event()
        self._errors = RateLimitedLog(log, logging.WARNING)
        self._unreachable = RateLimitedLog(log, logging.WARNING)
        self._thread = threading.Thread(target=self._run, name=f"{name}-topics", daemon=True)
        self._thread.start()

    def request(self, topics: Iterable[str], *, again: bool = False) -> None:
        """Ask for ``topics`` to exist (no-op for those already asked for). ``again``: the
        topics existed but were deleted since; they are checked and created anew even when
        the cluster's metadata still lists them for a moment."""
        with self._cond:
            wanted = set(topics)
            if again:
                self._recreate |= wanted
            new = wanted - self._requested
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
        self.admin.poll(0)  # the last log lines

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
                self.admin.poll(0)  # serves its log lines (else they pile up in its queue)
                self._on_reachable(False)
                if todo:
                    self._errors.note(
                        "%s: cannot create topics %s yet (cluster at %s), retrying: %s",
                        *(self.name, ", ".join(sorted(todo)), self.servers, exc),
                    )
                else:  # a probe: nothing to create, the metadata request itself failed
                    self._unreachable.note(
                        "%s: the Kafka cluster at %s is unreachable, retrying: %s",
                        *(self.name, self.servers, exc),
                    )
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            backoff = 0.5
            if self._stop.is_set():
                return
            self.admin.poll(0)
            self._on_reachable(True)
            done = set(result.created) | set(result.existing)
            with self._cond:
                self._requested -= done | set(result.failed)
            for topic in result.created:
                log.info("%s: created topic %s", self.name, topic)
            for topic, reason in result.failed.items():
                self._on_failed(topic, reason)
            with self._cond:
                again = done & self._recreate
                self._recreate -= again
            for topic in sorted(again):
                log.warning("%s: topic %s re-created", self.name, topic)
                try:
                    self._refresh(topic)
                except Exception as exc:  # the producer refreshes on its own, later
                    log.debug("%s: metadata refresh of %s failed: %s", self.name, topic, exc)
            if done:
                self._on_created(done)
