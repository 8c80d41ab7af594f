"""Exceptions of the public API. Every message names what was wrong and where."""

from __future__ import annotations


class AliecsError(Exception):
    """Base class of every error this package raises on purpose."""


class SettingsError(AliecsError):
    """Settings are missing, malformed or of the wrong type.

    The message names the key, the source (Consul key or file path) and what was expected.
    """

    def __init__(self, message: str, *, source: str = "", key: str = "") -> None:
        self.source = source
        self.key = key
        where = f"{source}: " if source else ""
        what = f"key '{key}': " if key else ""
        super().__init__(f"{where}{what}{message}")


class TransitionError(AliecsError):
    """A transition was refused (not allowed from the current state) or cancelled by a hook."""


class EnvironmentNotFound(AliecsError):
    """No environment has the given id."""


class PluginError(AliecsError):
    """A plugin could not be found, imported or initialised."""


class PublishError(AliecsError):
    """An event could not be handed to the producer (unknown kind, queue full past its timeout)."""


class BrokerUnreachable(AliecsError):
    """The Kafka brokers did not answer within the timeout (exit code 1 on the command line)."""

    exit_code = 1


class ReadError(AliecsError):
    """Topics could not be read back: brokers unreachable within the timeout, a fatal consumer
    error, or a topic deleted while reading. Exit code 1 on the command line."""

    exit_code = 1


class UnknownTopic(ReadError):
    """A topic that does not exist on the brokers or has no known message type (bad input,
    exit code 2 on the command line)."""

    exit_code = 2


class ReaderConfigError(ReadError):
    """A Kafka consumer property that is refused (set by the reader itself, or unknown to or
    invalid for librdkafka); bad input, exit code 2 on the command line."""

    exit_code = 2


class DevServerError(AliecsError):
    """A development server (``dev/kafka``, ``dev/consul``) could not be found, started, stopped
    or controlled; the message names the script, the command and what it printed."""
