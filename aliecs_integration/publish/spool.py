"""``Spool``: an optional on-disk journal that keeps every message handed to the publisher until
Kafka acknowledged it, so that a crash (SIGKILL, power cut of the process) loses nothing.

Contract (``kafkaProducer.spool.path`` names its base directory and turns it on; each
producer keeps its own journal in a sub-directory named after its bootstrap servers):

- :meth:`Spool.append` runs in ``publish`` before the message goes anywhere else: once
  ``publish`` returned, the message is in the journal. The journal is a series of append-only
  segment files (``segment-<n>.log``); each message is one record written with one
  ``write()`` call, so it is in the operating system's hands at once and a killed process
  keeps it (no fsync per message: a power cut may lose the last ones; every record carries a
  CRC and a torn last record is ignored). A record keeps the message's topic, key, value and
  Kafka headers, so a replay sends the same headers; journals written before headers existed
  (records without headers) are still read and replayed without headers.
- :meth:`Spool.done` runs for each delivery report: a delivered or permanently failed message
  (counted by the publisher as delivered or failed) is marked done by an acknowledgement
  record, written in batches (every 256 or 0.05 s); a message purged at close (counted as
  undelivered) stays. A segment whose messages are all done is deleted.
- :meth:`Spool.replay` at the next start returns what is left, oldest first (the journal is
  compacted into a fresh segment first); the publisher publishes it again (counted as
  published again) and logs how many. So delivery is at-least-once across a crash (what was
  acknowledged in the last fraction of a second before the kill goes twice) and exactly-once
  otherwise.
- bounded by the same caps as the publisher's queue (``queue.maxMessages``/``maxBytes``): past
  them the oldest entries are marked done (they are messages the overflow policy dropped,
  which the publisher counted), with a logged warning.
- one process per journal: a second one gets ``PublishError`` naming the path.

Thread-safe: ``publish`` is called from many threads, delivery reports from the poller's.
"""

from __future__ import annotations

import collections
import fcntl
import logging
import os
import struct
import threading
import time
import zlib
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError

from aliecs_integration.errors import PublishError
from aliecs_integration.publish.delivery_tracker import MISSING_TOPIC, DeliveryTracker
from aliecs_integration.publish.headers import Headers, pairs

log = logging.getLogger(__name__)

Entry = tuple[str, bytes, bytes | None, Headers | None]
"""topic, value, key, Kafka headers"""
_Key = tuple[str, bytes | None, int, int]
"""topic, key, length and hash of the value: how a delivery report finds its journal entry
without the journal keeping every value in memory (a collision would at worst swap which of
two identical-looking entries is marked done first)."""

_KEEP = frozenset({KafkaError._PURGE_QUEUE, KafkaError._PURGE_INFLIGHT, *MISSING_TOPIC})
"""Delivery errors after which the message stays journaled (purged at close: undelivered,
replayed at the next start; its topic deleted: it is produced again once re-created)."""
_ACK_BATCH = 256
_ACK_INTERVAL_S = 0.05
SEGMENT_BYTES = 64 * 1024 * 1024
"""A new segment is started past this size (a segment is deleted once all its messages are
done)."""

# record: kind (1 byte) | crc32 of the rest (4) | body length (4) | body
# kinds: M a message without headers (what journals before issue 15 hold; still read),
#        H a message with headers, A an acknowledgement
_HEAD = struct.Struct("<cII")
_MESSAGE = struct.Struct("<QHI")  # id, topic length, key length (NO_KEY: no key); then bytes
_HEADERS = struct.Struct("<I")  # H only, after the key: length of the encoded headers
_HEADER = struct.Struct("<HI")  # one header: name length, value length (NO_KEY: None)
_ACK = struct.Struct("<Q")
_NO_KEY = 0xFFFFFFFF


def journal_dir(base: Path | str, bootstrap_servers: tuple[str, ...]) -> Path:
    """The journal of the producer for ``bootstrap_servers`` under the configured ``base``
    directory: one per cluster, so that two producers of one process (core-kafka and the
    legacy plugin on other brokers) never share a journal, and a replay goes to the cluster
    the messages were meant for."""
    name = "".join(c if c.isalnum() or c in "._-" else "_" for c in ",".join(bootstrap_servers))
    return Path(base) / (name[:200] or "default")


def _key(topic: str, value: bytes, key: bytes | None) -> _Key:
    return (topic, key, len(value), hash(value))


def _encode_headers(headers: Headers) -> bytes:
    out = []
    for name, value in pairs(headers):
        raw = name.encode("utf-8")
        out.append(_HEADER.pack(len(raw), _NO_KEY if value is None else len(value)) + raw
                   + (value or b""))
    return b"".join(out)


def _decode_headers(data: bytes) -> list[tuple[str, bytes]]:
    headers: list[tuple[str, bytes]] = []
    at = 0
    while at < len(data):
        name_len, value_len = _HEADER.unpack_from(data, at)
        at += _HEADER.size
        name = data[at: at + name_len].decode("utf-8", "replace")
        at += name_len
        value = b""
        if value_len != _NO_KEY:
            value = data[at: at + value_len]
            at += value_len
        headers.append((name, value))
    return headers


def _message_record(ident: int, topic: bytes, value: bytes, key: bytes | None,
                    headers: Headers | None = None) -> bytes:
    head = _MESSAGE.pack(ident, len(topic), _NO_KEY if key is None else len(key)) + topic + (
        key or b"")
    if headers is None:
        kind, body = b"M", head + value
    else:
        encoded = _encode_headers(headers)
        kind, body = b"H", head + _HEADERS.pack(len(encoded)) + encoded + value
    return _HEAD.pack(kind, zlib.crc32(body), len(body)) + body


def _ack_records(idents: list[int]) -> bytes:
    out = []
    for ident in idents:
        body = _ACK.pack(ident)
        out.append(_HEAD.pack(b"A", zlib.crc32(body), len(body)) + body)
    return b"".join(out)


def _read_segment(path: Path) -> tuple[dict[int, Entry], set[int], bool]:
    """Messages (id -> entry) and acknowledged ids of one segment; True when it ended in a
    torn or corrupt record (ignored from there on)."""
    data = path.read_bytes()
    messages: dict[int, Entry] = {}
    acked: set[int] = set()
    pos = 0
    while pos < len(data):
        if pos + _HEAD.size > len(data):
            return messages, acked, True
        kind, crc, length = _HEAD.unpack_from(data, pos)
        body = data[pos + _HEAD.size: pos + _HEAD.size + length]
        if len(body) < length or zlib.crc32(body) != crc:
            return messages, acked, True
        pos += _HEAD.size + length
        if kind in (b"M", b"H") and length >= _MESSAGE.size:
            ident, topic_len, key_len = _MESSAGE.unpack_from(body)
            at = _MESSAGE.size
            topic = body[at: at + topic_len].decode("utf-8", "replace")
            at += topic_len
            key = None
            if key_len != _NO_KEY:
                key = body[at: at + key_len]
                at += key_len
            headers = None
            if kind == b"H":
                (headers_len,) = _HEADERS.unpack_from(body, at)
                at += _HEADERS.size
                headers = _decode_headers(body[at: at + headers_len])
                at += headers_len
            messages[ident] = (topic, body[at:], key, headers)
        elif kind == b"A" and length == _ACK.size:
            acked.add(_ACK.unpack(body)[0])
        else:
            return messages, acked, True
    return messages, acked, False


class Spool:
    """The journal in the directory ``path`` (created when missing), capped at
    ``max_messages`` and ``max_bytes``. Thread-safe."""

    def __init__(self, path: Path | str, *, max_messages: int, max_bytes: int) -> None:
        self.path = Path(path)
        self.max_messages, self.max_bytes = max_messages, max_bytes
        self._lock = threading.Lock()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            self._lock_fd = os.open(self.path / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise PublishError(f"spool {self.path}: cannot open: {exc.strerror or exc} (the "
                               "spool path is a directory)") from None
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self._lock_fd)
            raise PublishError(
                f"spool {self.path}: in use by another process (one process per spool)"
            ) from None
        self._index: dict[_Key, collections.deque[int]] = {}
        self._live: dict[int, tuple[int, int, _Key]] = {}  # id -> segment, size, key (by age)
        self._unacked: collections.Counter[int] = collections.Counter()  # per segment
        self._expected: collections.Counter[_Key] = collections.Counter()
        self._acked: list[int] = []
        self._last_commit = time.monotonic()
        self._trimmed = 0
        self.replayed = 0
        self.nbytes = 0
        self._closed = False
        try:
            self._left = self._recover()
        except OSError as exc:
            os.close(self._lock_fd)
            raise PublishError(f"spool {self.path}: cannot read: {exc}") from None

    @property
    def count(self) -> int:
        return len(self._live)

    def _segments(self) -> list[tuple[int, Path]]:
        found = []
        for item in self.path.glob("segment-*.log"):
            number = item.stem.removeprefix("segment-")
            if number.isdigit():
                found.append((int(number), item))
        return sorted(found)

    def _open_segment(self, number: int) -> None:
        self._segment = number
        self._fd = os.open(self.path / f"segment-{number:012d}.log",
                           os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._segment_bytes = os.fstat(self._fd).st_size

    def _recover(self) -> list[tuple[int, Entry]]:
        """Read every segment; keep what was not acknowledged, compacted into a new segment."""
        old = self._segments()
        messages: dict[int, Entry] = {}
        acked: set[int] = set()
        for _, segment in old:
            found, done, torn = _read_segment(segment)
            if torn:
                log.warning("spool %s: %s ends in a torn record (a crash while writing): "
                            "ignored from there", self.path, segment.name)
            messages.update(found)
            acked |= done
        self._next_id = max([*messages, *acked, 0]) + 1
        left = sorted((i, e) for i, e in messages.items() if i not in acked)
        self._open_segment((old[-1][0] + 1) if old else 1)
        if left:
            os.write(self._fd, b"".join(
                _message_record(i, t.encode(), v, k, h) for i, (t, v, k, h) in left))
            os.fsync(self._fd)
        for _, segment in old:
            segment.unlink()
        return left

    # ------------------------------------------------------------------ publish side
    def append(self, topic: str, value: bytes, key: bytes | None,
               headers: Headers | None = None) -> None:
        """Journal one message with its headers (written when this returns). A message
        :meth:`replay` returned is already journaled: publishing it again does not add it
        twice."""
        entry = _key(topic, value, key)
        with self._lock:
            if self._closed:
                return
            if self._expected and self._expected[entry] > 0:
                self._expected[entry] -= 1
                return
            ident = self._next_id
            self._next_id += 1
            record = _message_record(ident, topic.encode(), value, key, headers)
            try:
                os.write(self._fd, record)
            except OSError as exc:
                raise PublishError(f"spool {self.path}: cannot write: {exc}") from None
            self._track(ident, len(value) + len(key or b""), entry)
            self._segment_bytes += len(record)
            if self._segment_bytes >= SEGMENT_BYTES:
                self._rotate()
            if len(self._live) > self.max_messages or self.nbytes > self.max_bytes:
                self._trim()

    def _track(self, ident: int, size: int, entry: _Key) -> None:
        self._index.setdefault(entry, collections.deque()).append(ident)
        self._live[ident] = (self._segment, size, entry)
        self._unacked[self._segment] += 1
        self.nbytes += size

    def _rotate(self) -> None:
        self._write_acked()
        os.close(self._fd)
        previous = self._segment
        self._open_segment(previous + 1)
        self._delete_if_done(previous)

    def _trim(self) -> None:
        """Past the caps: the oldest entries are marked done (messages the overflow policy
        dropped)."""
        while self._live and (len(self._live) > self.max_messages
                              or self.nbytes > self.max_bytes):
            ident = next(iter(self._live))
            entry = self._live[ident][2]
            ids = self._index.get(entry)
            if ids is not None and ident in ids:
                ids.remove(ident)
                if not ids:
                    del self._index[entry]
            self._forget(ident)
            self._trimmed += 1
            if self._trimmed == 1:
                log.warning("spool %s: over the queue cap (%d messages / %d bytes): the oldest "
                            "entries leave the spool", self.path, self.max_messages,
                            self.max_bytes)

    def _forget(self, ident: int) -> None:
        segment, size, _ = self._live.pop(ident)
        self.nbytes -= size
        self._unacked[segment] -= 1
        self._acked.append(ident)

    # ------------------------------------------------------------------ delivery side
    def done(self, topic: str, value: bytes | None, key: bytes | None) -> None:
        """A message was delivered or failed for good: it leaves the journal (batched)."""
        entry = _key(topic, value if value is not None else b"", key)
        with self._lock:
            ids = self._index.get(entry)
            if not ids or self._closed:
                return
            ident = ids.popleft()
            if not ids:
                del self._index[entry]
            self._forget(ident)
            if (
                len(self._acked) >= _ACK_BATCH
                or time.monotonic() - self._last_commit >= _ACK_INTERVAL_S
            ):
                self._write_acked()

    def _write_acked(self) -> None:
        if not self._acked:
            return
        acked, self._acked = self._acked, []
        os.write(self._fd, _ack_records(acked))
        self._last_commit = time.monotonic()
        for segment in [s for s, n in self._unacked.items() if n <= 0 and s != self._segment]:
            self._delete_if_done(segment)

    def _delete_if_done(self, segment: int) -> None:
        if self._unacked[segment] > 0:
            return
        del self._unacked[segment]
        (self.path / f"segment-{segment:012d}.log").unlink(missing_ok=True)

    def flush(self) -> None:
        """Write the pending acknowledgements now."""
        with self._lock:
            if not self._closed:
                self._write_acked()

    # ------------------------------------------------------------------ start and stop
    def replay(self) -> list[Entry]:
        """What a previous process left (neither delivered nor failed), oldest first, as
        ``(topic, value, key, headers)`` (headers None for what a journal written before
        headers existed holds): publish each again, with the same headers; they are not
        journaled twice. Returns them once (an empty list afterwards)."""
        with self._lock:
            left, self._left = self._left, []
            for ident, (topic, value, key, _) in left:
                entry = _key(topic, value, key)
                self._track(ident, len(value) + len(key or b""), entry)
                self._expected[entry] += 1
            self.replayed += len(left)
        return [entry for _, entry in left]

    def close(self) -> None:
        """Write the pending acknowledgements and close; what is left stays for
        :meth:`replay` in the next process (an empty journal leaves no segment behind)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                self._write_acked()
                os.close(self._fd)
                if not self._live and not self._left:
                    for _, segment in self._segments():
                        segment.unlink()
            except OSError as exc:
                log.warning("spool %s: closing: %s", self.path, exc)
            os.close(self._lock_fd)

    def stats(self) -> dict[str, Any]:
        """Entries in the journal, bytes, replayed at start, trimmed past the caps."""
        with self._lock:
            return {"entries": len(self._live) + len(self._left), "bytes": self.nbytes,
                    "replayed": self.replayed, "trimmed": self._trimmed}


class SpooledDeliveries(DeliveryTracker):
    """The publisher's :class:`DeliveryTracker` that also tells the spool which messages are
    done: delivered or failed for good (not purged at close, not waiting for a deleted topic
    to come back: those stay journaled)."""

    def __init__(self, spool: Spool, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._spool = spool

    def on_delivery(self, err: Any, msg: Any) -> None:
        super().on_delivery(err, msg)
        self._after(err, msg)

    def on_delivery_since(self, queued: float, err: Any, msg: Any) -> None:
        super().on_delivery_since(queued, err, msg)
        self._after(err, msg)

    def _after(self, err: Any, msg: Any) -> None:
        if err is None or err.code() not in _KEEP:
            self._spool.done(msg.topic(), msg.value(), msg.key())
