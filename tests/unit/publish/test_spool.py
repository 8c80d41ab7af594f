"""Spool: journal until done, replay what a previous process left, caps, one process."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from aliecs_integration.errors import PublishError
from aliecs_integration.publish.spool import Spool
from aliecs_integration.settings.producer import ProducerConfig


def spool(tmp_path: Path, **caps: int) -> Spool:
    return Spool(tmp_path / "s" / "spool.db", max_messages=caps.get("max_messages", 1000),
                 max_bytes=caps.get("max_bytes", 1 << 20))


def test_what_is_not_done_is_replayed_by_the_next_process(tmp_path: Path) -> None:
    first = spool(tmp_path)
    for i in range(10):
        first.append("t", f"v{i}".encode(), b"k" if i % 2 else None)
    for i in range(0, 10, 3):
        first.done("t", f"v{i}".encode(), b"k" if i % 2 else None)
    first.close()
    second = spool(tmp_path)
    left = second.replay()
    assert left == [("t", f"v{i}".encode(), b"k" if i % 2 else None, None)
                    for i in range(10) if i % 3]
    for topic, value, key, headers in left:  # publishing them again: not journaled twice
        second.append(topic, value, key, headers)
    assert second.stats() == {"entries": 6, "bytes": 6 * 2 + 3, "replayed": 6, "trimmed": 0}
    for topic, value, key, _ in left:
        second.done(topic, value, key)
    second.close()
    third = spool(tmp_path)
    assert third.replay() == []
    third.close()


def test_identical_messages_are_counted_each(tmp_path: Path) -> None:
    s = spool(tmp_path)
    for _ in range(3):
        s.append("t", b"same", None)
    s.done("t", b"same", None)
    s.close()
    again = spool(tmp_path)
    assert again.replay() == [("t", b"same", None, None)] * 2
    again.close()


def test_bounded_by_the_caps(tmp_path: Path) -> None:
    s = spool(tmp_path, max_messages=5)
    for i in range(12):
        s.append("t", f"{i:02d}".encode(), None)
    assert s.stats()["entries"] == 5 and s.stats()["trimmed"] == 7
    s.close()
    again = spool(tmp_path)
    assert [v for _, v, _, _ in again.replay()] == [f"{i:02d}".encode() for i in range(7, 12)]
    again.close()


def _hold(path: str, ready: object, release: object) -> None:
    s = Spool(path, max_messages=10, max_bytes=1000)
    ready.set()  # type: ignore[attr-defined]
    release.wait(30)  # type: ignore[attr-defined]
    s.close()


def test_one_process_per_spool(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    path = tmp_path / "spool.db"
    other = ctx.Process(target=_hold, args=(str(path), ready, release))
    other.start()
    try:
        assert ready.wait(30)
        with pytest.raises(PublishError, match="in use by another process"):
            Spool(path, max_messages=10, max_bytes=1000)
    finally:
        release.set()
        other.join(30)


def test_a_torn_last_record_is_ignored(tmp_path: Path) -> None:
    first = spool(tmp_path)
    for i in range(3):
        first.append("t", f"v{i}".encode(), None)
    first.close()
    [segment] = sorted((tmp_path / "s" / "spool.db").glob("segment-*.log"))
    data = segment.read_bytes()
    segment.write_bytes(data[:-3])  # the last write cut short by a crash
    again = spool(tmp_path)
    assert [v for _, v, _, _ in again.replay()] == [b"v0", b"v1"]
    again.close()


def test_segments_of_done_messages_are_deleted(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import aliecs_integration.publish.spool as spool_module

    monkeypatch.setattr(spool_module, "SEGMENT_BYTES", 200)
    s = spool(tmp_path)
    for i in range(50):
        s.append("t", f"value{i:03d}".encode(), None)
    directory = tmp_path / "s" / "spool.db"
    assert len(list(directory.glob("segment-*.log"))) > 5
    for i in range(50):
        s.done("t", f"value{i:03d}".encode(), None)
    s.flush()
    assert len(list(directory.glob("segment-*.log"))) <= 1
    s.close()
    assert list(directory.glob("segment-*.log")) == []


def test_settings_key() -> None:
    config = ProducerConfig.from_dict({"spool": {"path": "/tmp/x.db"}}, source="s")
    assert config.spool_path == "/tmp/x.db"
    assert ProducerConfig.from_dict({}, source="s").spool_path is None
    with pytest.raises(Exception, match=r"kafkaProducer\.spool\.path"):
        ProducerConfig.from_dict({"spool": {"path": 5}}, source="s")


def test_one_journal_per_cluster(tmp_path: Path) -> None:
    from aliecs_integration.publish.spool import journal_dir

    a = journal_dir(tmp_path, ("k1:9092", "k2:9092"))
    b = journal_dir(tmp_path, ("legacy:9092",))
    assert a != b and a.parent == b.parent == tmp_path
    assert a.name == "k1_9092_k2_9092"
    first, second = (Spool(p, max_messages=10, max_bytes=1000) for p in (a, b))  # both open
    first.close()
    second.close()


HEADERS = [("content-type", b"application/x-protobuf; messageType=events.Event"),
           ("event-id", b"0123456789abcdef-7"), ("source-instance-id", b"i-1"), ("empty", b"")]


def test_headers_are_journaled_and_replayed_unchanged(tmp_path: Path) -> None:
    first = spool(tmp_path)
    first.append("t", b"with", b"k", HEADERS)
    first.append("t", b"without", None)
    first.append("t", b"", None, [])
    first.close()
    again = spool(tmp_path)  # recovery compacts the journal: the headers survive that too
    again.close()
    third = spool(tmp_path)
    assert third.replay() == [("t", b"with", b"k", HEADERS), ("t", b"without", None, None),
                              ("t", b"", None, [])]
    third.close()


def test_a_journal_written_before_headers_existed_is_replayed(tmp_path: Path) -> None:
    """The record format of earlier versions (kind M: id, topic, key, value) is still read."""
    import struct
    import zlib

    directory = tmp_path / "s" / "spool.db"
    directory.mkdir(parents=True)
    body = struct.pack("<QHI", 1, 1, 1) + b"t" + b"k" + b"old value"
    record = struct.pack("<cII", b"M", zlib.crc32(body), len(body)) + body
    (directory / "segment-000000000001.log").write_bytes(record)
    old = spool(tmp_path)
    assert old.replay() == [("t", b"old value", b"k", None)]
    old.append("t", b"new", None, HEADERS)
    old.close()
    again = spool(tmp_path)
    assert again.replay() == [("t", b"old value", b"k", None), ("t", b"new", None, HEADERS)]
    again.close()
