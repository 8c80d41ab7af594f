"""The hand-written varints are the protobuf serializer's."""

from __future__ import annotations

import pytest

from aliecs_integration.pb import events_pb2
from aliecs_integration.publish.wire import varint


@pytest.mark.parametrize("value", [
    0, 1, 127, 128, 16_383, 16_384, 2**21, 2**28 - 1, 2**28, 2**35 + 17, 2**56, 2**63 - 1,
    2**64 - 1,
])
def test_varint_is_the_protobuf_varint(value: int) -> None:
    message = events_pb2.Event(timestampNano=value if value < 2**63 else value - 2**64)
    expected = message.SerializeToString()[1:] if value else b"\x00"  # proto3 omits a zero
    assert varint(value) == expected
