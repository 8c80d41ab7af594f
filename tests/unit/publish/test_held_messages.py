"""Unit tests of aliecs_integration.publish.held_messages: the publisher's own queue, its share
of the cap and the overflow policies."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pytest

from aliecs_integration.errors import PublishError
from aliecs_integration.publish.held_messages import HeldMessages, size_of
from aliecs_integration.settings.producer import OverflowPolicy, ProducerConfig


class Setup:
    def __init__(self, **config: Any) -> None:
        self.client = 0  # messages in librdkafka's queue
        self.dropped: list[str] = []
        self.cond = threading.Condition()
        self.held = HeldMessages(
            ProducerConfig(**config),
            name="pub",
            client_len=lambda: self.client,
            cond=self.cond,
            record_dropped=self.dropped.append,
            logger=logging.getLogger("test.held"),
        )

    def fill(self, n: int, topic: str = "t", *, exists: bool = True, size: int = 1) -> None:
        for i in range(n):
            self.held.add((topic, str(i).encode() * size, None, 0.0), topic_exists=exists)


def test_size_counts_value_and_key() -> None:
    assert size_of(b"abc", None) == 3
    assert size_of(b"abc", b"k") == 4


def test_the_whole_message_cap_is_usable_while_librdkafka_holds_nothing() -> None:
    s = Setup(max_messages=10)
    s.fill(9, exists=False)
    assert not s.held.over_cap(1)
    s.fill(1, exists=False)
    assert s.held.over_cap(1)  # 10 held: the whole cap
    s.client = 3
    assert s.held.over_cap(1)
    s.held.clear()
    s.client = 10  # under block librdkafka may hold the whole count: nothing is left
    assert s.held.over_cap(1)
    s = Setup(max_messages=10, overflow=OverflowPolicy.DROP_OLDEST)
    s.client = 10  # librdkafka's share and its pending reports: ours is still at least half
    s.fill(4)
    assert not s.held.over_cap(1)
    s.fill(1)
    assert s.held.over_cap(1)


def test_bytes_are_capped_at_the_publishers_half() -> None:
    s = Setup(max_messages=1000, max_bytes=8192)  # 4096 bytes for the publisher's queue
    s.fill(1, size=4000)
    assert s.held.nbytes == 4000
    assert not s.held.over_cap(96) and s.held.over_cap(97)


def test_order_promotion_give_up_and_clear() -> None:
    s = Setup()
    s.fill(2, "a", exists=False)
    s.fill(1, "b", exists=False)
    s.fill(2, "c", exists=True)
    assert (s.held.count, s.held.nbytes) == (5, 5)
    assert s.held.pop_oldest()[:2] == ("c", b"0")  # the backlog first
    assert s.held.pop_backlog()[:2] == ("c", b"1")
    assert s.held.pop_oldest()[:2] == ("a", b"0")  # then the first waiting topic
    assert [item[1] for item in s.held.take_waiting("a")] == [b"1"]
    s.held.promote(["b"])
    assert [item[:2] for item in s.held.backlog] == [("b", b"0")]
    assert (s.held.count, s.held.nbytes) == (1, 1)
    assert s.held.clear() == 1 and (s.held.count, s.held.nbytes) == (0, 0)
    with pytest.raises(IndexError):
        s.held.pop_oldest()


def test_drop_newest_and_drop_oldest(caplog: pytest.LogCaptureFixture) -> None:
    newest = Setup(max_messages=4, overflow=OverflowPolicy.DROP_NEWEST)
    newest.fill(4)
    with caplog.at_level(logging.WARNING, logger="test.held"), newest.cond:
        assert newest.held.make_room("t", 1, lambda: False) is False
    assert newest.dropped == ["t"] and newest.held.count == 4
    assert "overflow policy drop_newest, 1 dropped by the policy in total" in caplog.text
    oldest = Setup(max_messages=4, overflow=OverflowPolicy.DROP_OLDEST)
    oldest.fill(2, "a", exists=False)
    oldest.fill(2, "b")
    with oldest.cond:
        assert oldest.held.make_room("new", 1, lambda: False) is True
    assert oldest.dropped == ["b"]  # the backlog's oldest
    assert [item[1] for item in oldest.held.backlog] == [b"1"]


def test_block_waits_for_room_then_raises() -> None:
    s = Setup(max_messages=4, overflow=OverflowPolicy.BLOCK, block_timeout_s=0.2)
    s.fill(4)
    started = time.monotonic()
    with s.cond, pytest.raises(PublishError, match=r"queue full \(4 messages"):
        s.held.make_room("t", 1, lambda: False)
    assert time.monotonic() - started >= 0.19 and s.dropped == ["t"]

    def free_one() -> None:
        with s.cond:
            s.held.pop_backlog()
            s.cond.notify_all()

    threading.Timer(0.05, free_one).start()
    with s.cond:
        assert s.held.make_room("t", 1, lambda: False) is True
    with s.cond, pytest.raises(PublishError):
        s.fill(1)
        s.held.make_room("t", 1, lambda: True)  # closed: no waiting
    assert s.dropped == ["t", "t"]
