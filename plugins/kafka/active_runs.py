"""The set of environments currently RUNNING, and the order ``ActiveRunsList`` lists them in.

Contract (``docs/events.md``, legacy topics): a stable sort that puts a run containing ``ITS``
first when both runs have two or more detectors, and otherwise the run with more detectors;
each run's detectors are listed alphabetically.

Our reading, implemented literally by :func:`compare_runs`: when both runs have two or more
detectors and exactly one of them contains ``ITS``, that one comes first; in every other case
(ITS in both or in neither, or one run with fewer than two detectors) the run with more
detectors comes first; equal counts compare equal, so the stable sort keeps them in the order
they entered RUNNING. This comparison is a total preorder (the same order as the key
"multi-detector with ITS, then multi-detector without ITS, then the rest; more detectors
first within each"), so the stable sort is well defined.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterable

from aliecs_integration.pb import kafka_pb2

from .env_info import RUNNING

ITS = "ITS"


def compare_runs(a: kafka_pb2.EnvInfo, b: kafka_pb2.EnvInfo) -> int:
    """Negative when ``a`` is listed before ``b``, positive when after, 0 to keep their order."""
    if len(a.detectors) >= 2 and len(b.detectors) >= 2:
        a_its, b_its = ITS in a.detectors, ITS in b.detectors
        if a_its and not b_its:
            return -1
        if b_its and not a_its:
            return 1
    return len(b.detectors) - len(a.detectors)


def sort_runs(runs: Iterable[kafka_pb2.EnvInfo]) -> list[kafka_pb2.EnvInfo]:
    """Copies of ``runs`` in listing order, each with its detectors sorted alphabetically."""
    listed = []
    for run in sorted(runs, key=functools.cmp_to_key(compare_runs)):
        copy = kafka_pb2.EnvInfo()
        copy.CopyFrom(run)
        copy.detectors[:] = sorted(run.detectors)
        listed.append(copy)
    return listed


class ActiveRuns:
    """Thread-safe set of running environments, keyed by environment id, in order of entry.

    ``lock`` is exposed so a caller can make "update, then publish the list" atomic with
    respect to other environments (it is re-entrant). The sorted list is computed once per
    change of the set, not per :meth:`listing`.
    """

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._runs: dict[str, kafka_pb2.EnvInfo] = {}
        self._sorted: kafka_pb2.ActiveRunsList | None = None  # without timestamp; None: stale

    def entered(self, info: kafka_pb2.EnvInfo) -> None:
        """Record that ``info.environmentId`` entered ``info.state``.

        RUNNING adds it (re-entering moves it to the end of the entry order); any other state,
        UNKNOWN included, removes it (absent ids are ignored).
        """
        with self.lock:
            removed = self._runs.pop(info.environmentId, None)
            if info.state == RUNNING:
                copy = kafka_pb2.EnvInfo()
                copy.CopyFrom(info)
                self._runs[info.environmentId] = copy
            elif removed is None:
                return  # not running before nor now: the list is unchanged
            self._sorted = None

    def ids(self) -> tuple[str, ...]:
        """The running environment ids, in order of entry."""
        with self.lock:
            return tuple(self._runs)

    def listing(self, timestamp_ms: int) -> kafka_pb2.ActiveRunsList:
        """An ``ActiveRunsList`` of the current set, sorted per spec, stamped ``timestamp_ms``."""
        listing = kafka_pb2.ActiveRunsList()
        with self.lock:
            if self._sorted is None:
                self._sorted = kafka_pb2.ActiveRunsList(activeRuns=sort_runs(self._runs.values()))
            listing.CopyFrom(self._sorted)
        listing.timestamp = timestamp_ms
        return listing
