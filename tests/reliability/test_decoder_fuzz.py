"""The consume command's decoder, fed random and truncated bytes on every kind of topic, never
raises and always yields one clear line (JSON and text forms): the message, or an error naming
topic, partition, offset, size and a hex prefix."""

from __future__ import annotations

import json

import pytest
from aliecs_integration_plugins import core_kafka
from hypothesis import given, settings
from hypothesis import strategies as st

from aliecs_integration.publish.reader import decode, json_line, message_types, text_line
from aliecs_integration.publish.topics import TopicNames
from aliecs_integration.records import (
    CallEvent,
    CallTraits,
    EnvironmentSnapshot,
    IntegratedServiceEvent,
    OpStatus,
    RunEvent,
    TransitionStepEvent,
    User,
)
from tests.fakes import FakeMessage

pytestmark = pytest.mark.reliability

T = TopicNames("aliecs")
TOPICS = [T.environment, T.run, T.call, T.core, T.integrated_service("dcs"),
          T.env_state("RUNNING"), T.env_leave_state("CONFIGURED"), T.env_list_running,
          T.before_start_activity]
TYPES = message_types(TOPICS, "aliecs")


def consumed(topic: str, value: bytes | None) -> FakeMessage:
    """A consumed message of ``topic`` as ``decode`` reads it: key ``env1``, partition 3,
    offset 1234."""
    return FakeMessage(topic, value, b"env1", partition=3, offset=1234)


def _valid_values() -> list[bytes]:
    snap = EnvironmentSnapshot("ENV1", "RUNNING", ("TPC",), "PHYSICS", 7,
                               {"kafka_enabled": "true", "x": "é"}, User("shifter", 1, 2))
    records = [
        TransitionStepEvent(snap, "START_ACTIVITY", "enter_RUNNING", OpStatus.ONGOING, True,
                            "transition step finished", "an error"),
        RunEvent("ENV1", 7, "RUNNING", "START_ACTIVITY", OpStatus.DONE_OK),
        CallEvent("ENV1", "odc.Start()", OpStatus.DONE_ERROR, CallTraits("before_X", "x", "5s"),
                  error="unreachable"),
        IntegratedServiceEvent("dcs", "ENV1", "dcs.SOR()", OpStatus.STARTED, payload="{}"),
    ]
    return [core_kafka.encode(r).value for r in records]


VALID = _valid_values()


def check_lines(topic: str, value: bytes | None) -> None:
    item = decode(consumed(topic, value), TYPES[topic])
    line = json_line(item)
    assert "\n" not in line
    doc = json.loads(line)
    assert (doc["topic"], doc["partition"], doc["offset"], doc["key"]) == (topic, 3, 1234, "env1")
    assert ("message" in doc) != ("error" in doc)
    if "error" in doc:
        assert doc["error"] and doc["size"] == len(value or b"")
        assert doc["hexPrefix"].startswith((value or b"")[:32].hex())
    text = text_line(item)
    assert "\n" not in text and text.startswith(f"{topic}[3]@1234 key=env1 ")
    assert ("UNDECODABLE" in text) == (not item.ok)


@settings(max_examples=300, deadline=None)
@given(topic=st.sampled_from(TOPICS), value=st.binary(max_size=512))
def test_random_bytes_never_crash_the_decoder(topic: str, value: bytes) -> None:
    check_lines(topic, value)


@settings(max_examples=300, deadline=None)
@given(topic=st.sampled_from(TOPICS), which=st.integers(0, len(VALID) - 1), data=st.data())
def test_truncated_messages_never_crash_the_decoder(topic: str, which: int,
                                                    data: st.DataObject) -> None:
    value = VALID[which]
    cut = data.draw(st.integers(0, len(value)), label="cut")
    check_lines(topic, value[:cut])


@settings(max_examples=100, deadline=None)
@given(which=st.integers(0, len(VALID) - 1), flips=st.lists(st.integers(0, 10_000), max_size=4))
def test_corrupted_messages_never_crash_the_decoder(which: int, flips: list[int]) -> None:
    value = bytearray(VALID[which])
    for position in flips:
        value[position % len(value)] ^= 0xFF
    check_lines(T.environment, bytes(value))


def test_whole_messages_decode_and_a_tombstone_is_a_clear_line() -> None:
    for value in VALID:
        assert decode(consumed(T.environment, value), TYPES[T.environment]).ok
    tombstone = decode(consumed(T.run, None), TYPES[T.run])
    assert not tombstone.ok and "tombstone" in tombstone.error
    check_lines(T.run, None)
