"""The Kafka headers of every published message: what it is, which event, who sent it.

Every message the built-in plugins publish carries three headers (values ASCII bytes); the
message's key and value are exactly what they would be without them:

- ``content-type``: ``application/x-protobuf; messageType=<protobuf full name>``, e.g.
  ``events.Event`` (core-kafka), ``kafka.NewStateNotification`` or ``kafka.ActiveRunsList``
  (the legacy plugin);
- ``event-id``: unique per message: ``<16 hex digits, random per process>-<counter>``;
- ``source-instance-id``: the id of the plugin host that published it
  (:attr:`aliecs_integration.records.PluginContext.instance_id`; ``serve``'s framework id).

:func:`message_type_of` reads the content type back (``consume`` picks its decoder with it).
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Sequence

from google.protobuf.message import Message

CONTENT_TYPE = "content-type"
EVENT_ID = "event-id"
SOURCE_INSTANCE_ID = "source-instance-id"
PROTOBUF = "application/x-protobuf"

Headers = dict[str, bytes] | list[tuple[str, bytes]]
"""Kafka headers as confluent-kafka takes them: a dict in header order (what the plugins make:
a dict of bytes is not tracked by Python's garbage collector, a list of tuples is, which costs
time when many messages are held), or ``(name, value)`` pairs (what a delivery report or a
consumed message gives back)."""

_PREFIX = secrets.token_hex(8)
_counter = itertools.count(1)


def content_type(message_type: type[Message]) -> bytes:
    """``application/x-protobuf; messageType=<full name>`` for ``message_type``."""
    return f"{PROTOBUF}; messageType={message_type.DESCRIPTOR.full_name}".encode("ascii")


class HeaderMaker:
    """Builds the headers of one plugin's messages of one type: the content type and the
    instance id are built once, the event id per call. Thread-safe (the counter is shared by
    every maker of the process and ``next`` on it is atomic)."""

    __slots__ = ("_content_type", "_instance", "_prefix")

    def __init__(self, message_type: type[Message], instance_id: str) -> None:
        self._content_type = content_type(message_type)
        self._instance = instance_id.encode("utf-8")
        self._prefix = f"{_PREFIX}-".encode("ascii")

    def __call__(self) -> dict[str, bytes]:
        """The headers of one new message (a new event id each call), in header order."""
        return {CONTENT_TYPE: self._content_type, EVENT_ID: b"%s%d" % (self._prefix,
                                                                     next(_counter)),
                SOURCE_INSTANCE_ID: self._instance}


def pairs(headers: Headers | None) -> list[tuple[str, bytes]]:
    """``headers`` as ``(name, value)`` pairs, in order (none: empty)."""
    if headers is None:
        return []
    return list(headers.items()) if isinstance(headers, dict) else list(headers)


def message_type_name(headers: Sequence[tuple[str, bytes | None]] | None) -> str | None:
    """The ``messageType`` of a ``content-type`` header naming ``application/x-protobuf``;
    None when there is no such header (or it names another content type)."""
    if not headers:
        return None
    for name, value in headers:
        if name.lower() != CONTENT_TYPE or value is None:
            continue
        text = value.decode("ascii", "replace")
        media, _, params = text.partition(";")
        if media.strip().lower() != PROTOBUF:
            return None
        for param in params.split(";"):
            key, _, found = param.partition("=")
            if key.strip().lower() == "messagetype" and found.strip():
                return found.strip().strip('"')
        return None
    return None


def header_text(headers: Sequence[tuple[str, bytes | None]] | None) -> dict[str, str]:
    """Headers as ``{name: text}`` (UTF-8, undecodable bytes replaced; a later name wins)."""
    return {name: (value or b"").decode("utf-8", "replace") for name, value in headers or ()}
