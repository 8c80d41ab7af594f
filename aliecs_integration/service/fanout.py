"""The subscription fan-out behind ``Subscribe``: every message core-kafka publishes, to every
subscriber that wants its environment.

:meth:`EventFanout.publish` is core-kafka's event listener: it runs on the thread that fired the
hook, right after the publisher accepted the message, so a subscriber receives exactly the bytes
Kafka received, in the order they were handed to the producer (per environment that is the
order of the environment's events). Subscribers have a bounded queue each: one that falls
further behind than its capacity is ended (its stream closes with a clear reason) rather than
slowing the environments down or growing without bound.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Iterator

from aliecs_integration.pb import events_pb2

DEFAULT_CAPACITY = 10_000
"""Messages a subscriber may be behind before it is ended."""


def environment_of(value: bytes) -> str:
    """The environment id an encoded ``events.Event`` is about ("" for core events and events
    of no environment)."""
    event = events_pb2.Event.FromString(value)
    which = event.WhichOneof("Payload")
    if which is None:
        return ""
    payload = getattr(event, which)
    return str(getattr(payload, "environmentId", ""))


class SubscriptionEnded(Exception):
    """The subscription was ended by the fan-out; the message says why."""


class Subscription:
    """One subscriber: iterate to receive serialized ``events.Event`` messages.

    Iteration blocks until a message arrives, :meth:`close` is called (iteration stops after the
    messages already queued), or the fan-out ends the subscription (raises
    :class:`SubscriptionEnded` after the queued messages).
    """

    def __init__(self, fanout: EventFanout, env_id: str, capacity: int) -> None:
        self.env_id = env_id
        self._fanout = fanout
        self._capacity = capacity
        self._queue: collections.deque[bytes] = collections.deque()
        self._cond = threading.Condition()
        self._closed = False
        self._ended: str | None = None

    def offer(self, value: bytes) -> None:
        """Queue one message (called by the fan-out)."""
        with self._cond:
            if self._closed or self._ended is not None:
                return
            if len(self._queue) >= self._capacity:
                self._ended = (f"subscriber fell more than {self._capacity} events behind; "
                               "subscribe again")
            else:
                self._queue.append(value)
            self._cond.notify_all()

    def close(self) -> None:
        """End the subscription: iteration stops once the queued messages are taken."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._fanout.unsubscribe(self)

    def next(self, timeout_s: float | None = None) -> bytes | None:
        """The next message; None when closed and drained, or after ``timeout_s`` without one.
        Raises :class:`SubscriptionEnded` once drained after the fan-out ended it."""
        with self._cond:
            while not self._queue:
                if self._ended is not None:
                    raise SubscriptionEnded(self._ended)
                if self._closed:
                    return None
                if not self._cond.wait(timeout_s):
                    return None
            return self._queue.popleft()

    def closed(self) -> bool:
        with self._cond:
            return self._closed and not self._queue

    def __iter__(self) -> Iterator[bytes]:
        while True:
            value = self.next()
            if value is None:
                return
            yield value


class EventFanout:
    """Distributes published messages to subscriptions; thread-safe."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self._capacity = capacity
        self._subs: tuple[Subscription, ...] = ()
        self._lock = threading.Lock()

    def subscribe(self, env_id: str = "") -> Subscription:
        """A new subscription to one environment's events, or to every event when ``env_id``
        is empty. Receives what is published from now on."""
        sub = Subscription(self, env_id, self._capacity)
        with self._lock:
            self._subs = (*self._subs, sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            self._subs = tuple(s for s in self._subs if s is not sub)

    def subscriber_count(self) -> int:
        return len(self._subs)

    def publish(self, topic: str, key: bytes | None, value: bytes) -> None:
        """Hand one published message to the subscribers that want it (core-kafka's event
        listener). The lock keeps every subscriber's queue in one publishing order."""
        with self._lock:
            subs = self._subs
            if not subs:
                return
            env_id = environment_of(value) if any(s.env_id for s in subs) else ""
            for sub in subs:
                if not sub.env_id or sub.env_id == env_id:
                    sub.offer(value)

    def close_all(self) -> None:
        """Close every subscription (their streams end after what is queued)."""
        with self._lock:
            subs = self._subs
        for sub in subs:
            sub.close()
