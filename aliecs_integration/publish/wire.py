"""Protobuf wire-format pieces written by hand where a serializer call would cost more than the
bytes: varints. Used by the built-in plugins' encoders; every use is checked against the
protobuf serializer's own bytes by the tests."""

from __future__ import annotations

SMALL_VARINTS = tuple(bytes([n]) for n in range(128))
"""The one-byte varints of 0..127, ready made."""

LOW_28 = (1 << 28) - 1
"""The low 28 bits: four 7-bit varint groups."""


def low_groups(value: int) -> bytes:
    """The four varint bytes of the low 28 bits of ``value``, each with the continuation bit
    (a higher group follows): the groups of 7 bits spread into bytes by arithmetic."""
    low = value & LOW_28
    return ((low & 0x7F) | (low & 0x3F80) << 1 | (low & 0x1FC000) << 2 | (low & 0xFE00000) << 3
            | 0x80808080).to_bytes(4, "little")


def varint(value: int) -> bytes:
    """Protobuf varint of a non-negative int below 2**64."""
    if value < 128:
        return SMALL_VARINTS[value]
    if value < 16384:
        return bytes(((value & 0x7F) | 0x80, value >> 7))
    if value >= 1 << 28:
        return low_groups(value) + varint(value >> 28)
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)
