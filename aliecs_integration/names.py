"""One validation layer for the names that end up in Kafka topic names or Consul keys.

An integrated-service name becomes the last component of a topic name
(``<root>.integrated_service.<service>``), so it must be ASCII: Kafka accepts only
``[a-zA-Z0-9._-]`` and at most 249 characters in a topic name. ``str.isidentifier()`` is not
enough (``dcsé`` and ``Ωmega`` pass it, then the broker refuses the topic). A runtime-variable
name becomes the last component of a Consul key, so it may not contain ``/`` or ``..``.
Scenario files, the environment manager's API and the plugins all use these checks.
"""

from __future__ import annotations

import re

from aliecs_integration.errors import AliecsError

MAX_TOPIC_LENGTH = 249
"""Kafka's limit on a topic name."""
MAX_SERVICE_LENGTH = 100
"""Leaves room for any topic root within :data:`MAX_TOPIC_LENGTH`."""

_SERVICE = re.compile(r"[a-z0-9][a-z0-9_-]*")
_TOPIC = re.compile(r"[A-Za-z0-9._-]+")
_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
MAX_VARIABLE_LENGTH = 128


class InvalidName(AliecsError, ValueError):
    """A name that cannot become a topic name or a Consul key; the message says which name and
    what is allowed (exit code 2 on the command line)."""

    exit_code = 2


def service_name(name: object) -> str:
    """The integrated-service name ``name`` stripped and lower-cased, or :class:`InvalidName`:
    it must be 1..100 ASCII characters of ``[a-z0-9_-]`` (after lower-casing), starting with a
    letter or digit."""
    if not isinstance(name, str):
        raise InvalidName(f"integrated service name: expected a string, got {name!r}")
    text = name.strip().lower()
    if not text.isascii() or not _SERVICE.fullmatch(text) or len(text) > MAX_SERVICE_LENGTH:
        raise InvalidName(
            f"integrated service name {name[:60]!r}{'...' if len(name) > 60 else ''}: expected "
            f"1 to {MAX_SERVICE_LENGTH} ASCII letters, digits, '_' or '-' (it becomes part of a "
            "Kafka topic name)"
        )
    return text


def topic_name(name: str) -> str:
    """``name`` when Kafka accepts it as a topic name (``[a-zA-Z0-9._-]``, 1..249 characters,
    not ``.`` or ``..``), else :class:`InvalidName`."""
    if (
        not name.isascii()
        or not _TOPIC.fullmatch(name)
        or len(name) > MAX_TOPIC_LENGTH
        or name in (".", "..")
    ):
        raise InvalidName(
            f"topic name {name[:60]!r}{'...' if len(name) > 60 else ''}: expected 1 to "
            f"{MAX_TOPIC_LENGTH} ASCII letters, digits, '.', '_' or '-'"
        )
    return name


def variable_name(name: object) -> str:
    """A runtime-variable name that is safe as the last component of a Consul key:
    ``[A-Za-z_][A-Za-z0-9_.-]*``, at most 128 characters, no ``..``; else :class:`InvalidName`."""
    if (
        not isinstance(name, str)
        or not name.isascii()
        or not _VARIABLE.fullmatch(name)
        or ".." in name
        or len(name) > MAX_VARIABLE_LENGTH
    ):
        raise InvalidName(
            f"variable name {str(name)[:60]!r}: expected a letter or '_' then letters, digits, "
            f"'_', '.' or '-' (no '/', no '..', at most {MAX_VARIABLE_LENGTH} characters)"
        )
    return name
