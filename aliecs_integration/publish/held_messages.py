"""``HeldMessages``: the publisher's own queue, its share of the cap on undelivered messages,
and the overflow policy applied when it is full.

A message is held here while its topic does not exist yet (``waiting``, per topic), then
while librdkafka's queue has no room for it (``backlog``, one FIFO over every topic, oldest
first). librdkafka's own queue holds the other share of the cap; see
:mod:`aliecs_integration.publish.publisher` for the contract.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import NoReturn

from aliecs_integration.errors import PublishError
from aliecs_integration.log_limits import RateLimitedLog
from aliecs_integration.publish.headers import Headers
from aliecs_integration.settings.producer import OverflowPolicy, ProducerConfig

Item = tuple[str, bytes, bytes | None, float, Headers | None]
"""One held message: topic, value, key, time it was queued (``time.monotonic()``), Kafka
headers."""


def size_of(value: bytes, key: bytes | None) -> int:
    """The bytes a message counts against ``queue.maxBytes``: its value and key."""
    return len(value) + (len(key) if key else 0)


class HeldMessages:
    """Messages held by the publisher ``name`` under ``config``'s cap, with their count and
    bytes. Not thread-safe: every call is made with ``cond``'s lock held.

    The cap: at most the publisher's share of ``maxBytes``; of ``maxMessages``, at least its
    share and up to what librdkafka's queue leaves of the whole (``client_len()``: its
    messages, and its few events not served yet).
    Handing a message over to librdkafka leaves the sum of both queues unchanged (deliveries
    shrink it), so the hand-over never puts what is held here over the cap. Drops by the
    overflow policy are passed to ``record_dropped(topic)`` and logged on ``logger``
    (rate-limited).
    """

    def __init__(
        self,
        config: ProducerConfig,
        *,
        name: str,
        client_len: Callable[[], int],
        cond: threading.Condition,
        record_dropped: Callable[[str], None],
        logger: logging.Logger,
    ) -> None:
        split = config.queue_split()
        self.own_messages, self.own_bytes = split.own_messages, split.own_bytes
        self.config, self.name, self.logger = config, name, logger
        self._client_len, self._cond, self._record_dropped = client_len, cond, record_dropped
        self._drops = RateLimitedLog(logger, logging.WARNING)
        self._drop_total = 0
        self.backlog: collections.deque[Item] = collections.deque()
        """Messages whose topic exists, oldest first (never replaced: ``clear`` empties it)."""
        self.waiting: dict[str, collections.deque[Item]] = {}
        self.count = 0
        self.nbytes = 0

    def over_cap(self, size: int) -> bool:
        """True when one more message of ``size`` bytes does not fit (see the class doc)."""
        if self.nbytes + size > self.own_bytes:
            return True
        held = self.count
        return held >= self.own_messages and held + self._client_len() >= self.config.max_messages

    def make_room(self, topic: str, size: int, closed: Callable[[], bool]) -> bool:
        """Apply the overflow policy for a new message of ``topic`` and ``size`` bytes that
        is :meth:`over_cap`. False: the new message was dropped (``drop_newest``). Under
        ``block``, waits on ``cond`` for room, then raises ``PublishError`` (counted as
        dropped) after ``blockTimeoutSeconds`` or once ``closed()``."""
        policy = self.config.overflow
        if policy is OverflowPolicy.DROP_NEWEST:
            self._dropped(topic, policy)
            return False
        if policy is OverflowPolicy.DROP_OLDEST:
            while self.over_cap(size):
                self._dropped(self.pop_oldest()[0], policy)
            return True
        deadline = time.monotonic() + self.config.block_timeout_s
        while self.over_cap(size):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or closed():
                self.refuse_full(topic)
            self._cond.wait(min(remaining, 0.05))  # room also frees as librdkafka delivers
        return True

    def drop(self, topic: str) -> None:
        """Count and log one new message of ``topic`` dropped by ``drop_newest`` because
        librdkafka's queue is full."""
        self._dropped(topic, self.config.overflow)

    def refuse_full(self, topic: str) -> NoReturn:
        """Count and log a new message of ``topic`` refused by ``block`` after
        ``blockTimeoutSeconds``; raise ``PublishError``."""
        self._dropped(topic, self.config.overflow)
        raise PublishError(
            f"{self.name}: message to {topic!r} dropped: queue full "
            f"({self.config.max_messages} messages / {self.config.max_bytes} bytes) "
            f"for {self.config.block_timeout_s} s (broker unreachable?)"
        )

    def per_topic(self) -> collections.Counter[str]:
        """How many messages are held per topic."""
        counts: collections.Counter[str] = collections.Counter(
            {topic: len(queue) for topic, queue in self.waiting.items()}
        )
        counts.update(item[0] for item in self.backlog)
        return counts

    def log_pending_drops(self) -> None:
        """Log the drops not reported yet by the rate-limited warning (at close)."""
        if self._drops.pending:
            self.logger.warning(
                "%s: %d more dropped since the last warning", self.name, self._drops.pending
            )

    def _dropped(self, topic: str, policy: OverflowPolicy) -> None:
        """Count and log one message dropped by the overflow policy."""
        self._record_dropped(topic)
        self._drop_total += 1
        self._drops.note(
            "%s: queue full, message to %s dropped (overflow policy %s, %d "
            "dropped by the policy in total)",
            *(self.name, topic, policy.value, self._drop_total),
        )

    def add(self, item: Item, *, topic_exists: bool) -> None:
        """Hold ``item``: in the backlog when its topic exists, else waiting for it."""
        if topic_exists:
            self.backlog.append(item)
        else:
            self.waiting.setdefault(item[0], collections.deque()).append(item)
        self.count += 1
        self.nbytes += size_of(item[1], item[2])

    def pop_oldest(self) -> Item:
        """Remove and return the oldest message: the backlog's first, else the first waiting
        topic's (``IndexError`` when nothing is held)."""
        for queue in (self.backlog, *self.waiting.values()):
            if queue:
                return self._counted_out(queue.popleft())
        raise IndexError("no message held")

    def pop_backlog(self) -> Item:
        """Remove and return the backlog's first message (after librdkafka took it)."""
        return self._counted_out(self.backlog.popleft())

    def promote(self, topics: Iterable[str]) -> None:
        """``topics`` now exist: their waiting messages join the backlog, in this order."""
        for topic in topics:
            self.backlog.extend(self.waiting.pop(topic, ()))

    def take_waiting(self, topic: str) -> list[Item]:
        """Remove and return every message waiting for ``topic``."""
        lost = list(self.waiting.pop(topic, ()))
        self.count -= len(lost)
        self.nbytes -= sum(size_of(value, key) for _, value, key, *_ in lost)
        return lost

    def clear(self) -> int:
        """Forget every held message; return how many there were."""
        count = self.count
        self.backlog.clear()
        self.waiting.clear()
        self.count = self.nbytes = 0
        return count

    def _counted_out(self, item: Item) -> Item:
        self.count -= 1
        self.nbytes -= size_of(item[1], item[2])
        return item
