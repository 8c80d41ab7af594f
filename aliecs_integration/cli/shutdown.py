"""Turning SIGTERM into an orderly shutdown.

Inside :func:`sigterm_raises`, SIGTERM raises :class:`Terminated` in the main thread, so the
``finally`` blocks on the way out run as for any error: the environment manager stops its call
workers and the plugin host fires ``on_host_stop``, where the producers flush within their
timeout and log how many messages were delivered and how many were not.
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

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"terminated by {signal.Signals(signum).name}")

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

    def raise_terminated(signum: int, frame: FrameType | None) -> None:
        raise Terminated(signum)

    previous = signal.signal(signal.SIGTERM, raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
