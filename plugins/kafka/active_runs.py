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

import bisect
import functools
import itertools
import threading
from collections.abc import Iterable

from aliecs_integration.pb import kafka_pb2
from aliecs_integration.publish.wire import varint

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


def listing_key(run: kafka_pb2.EnvInfo) -> tuple[int, int]:
    """The order of :func:`compare_runs` as a key: multi-detector runs with ITS, then the other
    multi-detector runs, then the rest; more detectors first within each."""
    count = len(run.detectors)
    group = (0 if ITS in run.detectors else 1) if count >= 2 else 2
    return group, -count


_RUN_TAG = b"\x0a"  # ActiveRunsList.activeRuns: field 1, length-delimited
_last_timestamp: tuple[int, bytes] = (0, b"")


def timestamp_field(timestamp_ms: int) -> bytes:
    """Field 2 (``timestamp``, uint64) of ``ActiveRunsList`` and ``NewStateNotification``
    serialized: empty for 0 (proto3 omits a zero); the last one is kept (the messages of one
    moment share it)."""
    global _last_timestamp
    last = _last_timestamp  # read once: another thread may replace it
    if last[0] != timestamp_ms:
        last = _last_timestamp = (
            timestamp_ms, b"\x10" + varint(timestamp_ms) if timestamp_ms else b"")
    return last[1]


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

    :meth:`encoded_listing` keeps each running environment's entry encoded (once, when it
    enters RUNNING) in listing order: a change of the set costs one insertion or removal in
    that order, a listing one join of the encoded entries, both linear in the number of
    running environments; nothing is re-encoded.
    """

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._runs: dict[str, kafka_pb2.EnvInfo] = {}
        self._sorted: kafka_pb2.ActiveRunsList | None = None  # without timestamp; None: stale
        self._seq = itertools.count()
        self._order: list[tuple[int, int, int, str]] = []  # (group, -detectors, seq, id)
        self._keys: dict[str, tuple[int, int, int, str]] = {}
        self._entries: dict[str, bytes] = {}  # id -> tag + length + EnvInfo bytes
        self._body: bytes | None = None  # the entries joined in listing order; None: stale

    def entered(self, info: kafka_pb2.EnvInfo) -> None:
        """Record that ``info.environmentId`` entered ``info.state``.

        RUNNING adds it (re-entering moves it to the end of the entry order); any other state,
        UNKNOWN included, removes it (absent ids are ignored).
        """
        env_id = info.environmentId
        with self.lock:
            removed = self._runs.pop(env_id, None)
            if removed is not None:
                key = self._keys.pop(env_id)
                del self._order[bisect.bisect_left(self._order, key)]
                del self._entries[env_id]
            if info.state == RUNNING:
                copy = kafka_pb2.EnvInfo()
                copy.CopyFrom(info)
                self._runs[env_id] = copy
                key = (*listing_key(copy), next(self._seq), env_id)
                bisect.insort(self._order, key)
                self._keys[env_id] = key
                listed = kafka_pb2.EnvInfo()
                listed.CopyFrom(copy)
                listed.detectors[:] = sorted(copy.detectors)
                entry = listed.SerializeToString()
                self._entries[env_id] = _RUN_TAG + varint(len(entry)) + entry
            elif removed is None:
                return  # not running before nor now: the list is unchanged
            self._sorted = None
            self._body = None

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

    def encoded_listing(self, timestamp_ms: int) -> tuple[bytes, int]:
        """:meth:`listing` serialized (the same bytes as its ``SerializeToString()``), and the
        number of runs listed."""
        with self.lock:
            body = self._body
            if body is None:
                entries = self._entries
                body = self._body = b"".join(entries[key[3]] for key in self._order)
            count = len(self._order)
        return body + timestamp_field(timestamp_ms), count
