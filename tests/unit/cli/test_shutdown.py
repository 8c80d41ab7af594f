"""sigterm_raises: SIGTERM becomes Terminated in the main thread, and the handler is restored."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from aliecs_integration.cli.shutdown import Terminated, sigterm_raises


def test_sigterm_raises_terminated_and_restores_the_handler() -> None:
    before = signal.getsignal(signal.SIGTERM)
    cleaned = []
    with pytest.raises(Terminated) as info, sigterm_raises():
        try:
            os.kill(os.getpid(), signal.SIGTERM)
        finally:
            cleaned.append(True)
    assert cleaned == [True]
    assert info.value.exit_code == 143
    assert str(info.value) == "terminated by SIGTERM"
    assert signal.getsignal(signal.SIGTERM) is before


def test_outside_the_main_thread_it_changes_nothing() -> None:
    seen = []

    def body() -> None:
        with sigterm_raises():
            seen.append(signal.getsignal(signal.SIGTERM))

    before = signal.getsignal(signal.SIGTERM)
    thread = threading.Thread(target=body)
    thread.start()
    thread.join()
    assert seen == [before]


def test_terminated_is_not_an_exception() -> None:
    assert not issubclass(Terminated, Exception)
