"""Turning SIGTERM into an orderly shutdown.

Inside :func:`sigterm_raises`, SIGTERM raises :class:`Terminated` in the main thread, so the
``finally`` blocks on the way out run as for any error: the scenario's environment threads
stop, the environment manager stops its call workers and the plugin host fires
``on_host_stop``, where the producers flush within their timeout and log how many messages
were delivered and how many were not. A second SIGTERM during that shutdown raises
:class:`Terminated` again (``again``): the flush is cut short and nothing more is counted.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


class Terminated(BaseException):
    """The process received a termination signal. A BaseException, like KeyboardInterrupt, so
    that ``except Exception`` handlers on the way out do not swallow it."""

    def __init__(self, signum: int, *, again: bool = False) -> None:
        self.signum = signum
        self.again = again
        """A second signal, while the first one's orderly shutdown (the flush) was running."""
        name = signal.Signals(signum).name
        super().__init__(f"terminated by {name} again during shutdown" if again
                         else f"terminated by {name}")

    def outcome(self) -> str:
        """What happened to the events the producers held, truthfully."""
        if self.again:
            return ("the shutdown was cut short: events the producers still held were neither "
                    "flushed nor counted (they may be lost)")
        return ("what the producers held was flushed within the flush timeout, or counted as "
                "undelivered in the 'closed:' log line")

    @property
    def exit_code(self) -> int:
        """The conventional exit code: 128 + the signal number (143 for SIGTERM)."""
        return 128 + self.signum


@contextmanager
def sigterm_raises() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated` in the main thread; the previous
    handler is restored on exit. Outside the main thread (where Python cannot install signal
    handlers) it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    received: list[int] = []

    def raise_terminated(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        raise Terminated(signum, again=len(received) > 1)

    previous = signal.signal(signal.SIGTERM, raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
