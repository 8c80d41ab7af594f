"""``PublisherSwitch``: a plugin's current publisher, replaceable while other threads publish.

Contract of :meth:`PublisherSwitch.replace` (live settings: a new ``kafkaEndpoints``,
``kafkaProducer`` or ``enableKafka``):

- messages published before ``replace`` began go to the old publisher, messages published
  after it returned go to the new one; a message is never handed to both or to neither;
- publishing threads wait while the old publisher is flushed (at most ``timeout_s``), so the
  new publisher gets a key's next message only after the old one acknowledged that key's
  earlier ones: order per key (per environment) holds across the switch;
- the old publisher is then closed (a shared one: only its last user's close stops it); its
  final report is kept, so :meth:`delivery_report` and :meth:`metrics_snapshot` count every
  publisher this switch ever used.

The publishing path takes no lock (see :meth:`PublisherSwitch.publish`); what it adds is
measured by ``bench/switch_cost.py``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from threading import get_ident
from typing import Protocol

from aliecs_integration.publish.headers import Headers
from aliecs_integration.publish.metrics import MetricsSnapshot, merged
from aliecs_integration.records import ConnectionState, DeliveryReport


class SwitchablePublisher(Protocol):
    """What the switch needs of :class:`~aliecs_integration.publish.publisher.Publisher`."""

    def publish(self, topic: str, value: bytes, key: bytes | None = None,
                headers: Headers | None = None) -> None: ...

    def flush(self, timeout_s: float) -> DeliveryReport: ...

    def close(self, timeout_s: float | None = None) -> DeliveryReport: ...

    def connection_state(self) -> ConnectionState: ...


SnapshotOf = Callable[[SwitchablePublisher], MetricsSnapshot | None]


def _add(a: DeliveryReport, b: DeliveryReport) -> DeliveryReport:
    return DeliveryReport(a.delivered + b.delivered, a.failed + b.failed, a.dropped + b.dropped,
                          a.undelivered + b.undelivered)


class PublisherSwitch:
    """Holds the current publisher (or None: producing is off). Thread-safe.

    ``snapshot_of(publisher)`` reads a publisher's per-topic counts (kept for retired ones).
    """

    def __init__(self, publisher: SwitchablePublisher | None,
                 snapshot_of: SnapshotOf = lambda p: None) -> None:
        self._current = publisher
        self._snapshot_of = snapshot_of
        self._active: dict[int, None] = {}  # threads inside publish (set and del are atomic)
        self._switching = False
        self._open = threading.Event()  # set unless a switch is in progress
        self._open.set()
        self._writer = threading.Lock()  # one replace at a time
        self._lock = threading.Lock()  # the retired totals
        self._retired_report = DeliveryReport(0, 0, 0, 0)
        self._retired_metrics: MetricsSnapshot | None = None  # merged: bounded
        self._retired_any = False
        self.switches = 0
        """How many times :meth:`replace` changed the publisher."""

    @property
    def current(self) -> SwitchablePublisher | None:
        return self._current

    def publish(self, topic: str, value: bytes, key: bytes | None = None,
                headers: Headers | None = None) -> bool:
        """Hand one message to the current publisher; False (nothing done) when there is none.
        Waits while a :meth:`replace` flushes the old publisher. Raises what
        ``Publisher.publish`` raises. Not re-entrant on one thread.

        No lock on this path: a thread announces itself in a dict, then checks the switching
        flag; :meth:`replace` sets the flag, then waits for the dict to empty. Under the GIL
        each step is atomic and they are seen in program order, so either the publishing
        thread sees the flag (and waits) or ``replace`` sees the thread (and waits for it).
        """
        ident = get_ident()
        active = self._active
        while True:
            active[ident] = None
            if not self._switching:
                break
            del active[ident]
            self._open.wait()
        try:
            publisher = self._current
            if publisher is None:
                return False
            publisher.publish(topic, value, key, headers)
        finally:
            del active[ident]
        return True

    def replace(self, new: SwitchablePublisher | None, timeout_s: float) -> DeliveryReport | None:
        """Make ``new`` the current publisher (see the module doc): wait for publishes in
        progress, flush the old one within ``timeout_s`` while new ones wait, switch, then
        close the old one. Returns the old one's final report (None when there was none)."""
        deadline = time.monotonic() + max(0.0, timeout_s)
        with self._writer:
            self._open.clear()
            self._switching = True
            try:
                while self._active:  # publishes in progress (bounded by the overflow policy)
                    time.sleep(0.0005)
                old = self._current
                if old is not None:
                    old.flush(max(0.0, deadline - time.monotonic()))
                self._current = new
                self.switches += 1
            finally:
                self._switching = False
                self._open.set()
        if old is None:
            return None
        report = old.close(max(0.0, deadline - time.monotonic()))
        snapshot = self._snapshot_of(old)
        with self._lock:
            self._retired_report = _add(self._retired_report, report)
            self._retired_any = True
            if snapshot is not None:
                before = self._retired_metrics
                self._retired_metrics = snapshot if before is None else merged([before, snapshot])
        return report

    def delivery_report(self, current: DeliveryReport | None) -> DeliveryReport | None:
        """``current`` (the current publisher's report) plus every retired publisher's; None
        when there is no current publisher and none was ever retired."""
        retired = self._retired_report
        if current is None:
            return retired if self._retired_any else None
        return _add(retired, current)

    def metrics_snapshot(self, current: MetricsSnapshot) -> MetricsSnapshot:
        """``current`` (the current publisher's counts) merged with every retired one's."""
        retired = self._retired_metrics
        return current if retired is None else merged([retired, current])
