"""The call runner: runs one call function with a timeout, on a bounded pool of daemon worker
threads, or inline for functions marked :func:`~aliecs_integration.plugin.nonblocking`. It knows
nothing of workflows or steps (:mod:`aliecs_integration.engine.steps` uses it).

Why not :class:`concurrent.futures.ThreadPoolExecutor`: its workers are joined at interpreter
exit, so one call that never returns would hang the process at shutdown. The workers here are
daemon threads; a call that exceeds its timeout is *abandoned*: the caller gets DONE_TIMEOUT at
once while the worker keeps running the function until it returns (Python cannot kill a thread).

Bounded pool: at most ``max_workers`` threads exist. Invariant: a thread is started whenever
more calls are in the pool (queued or running) than threads exist, up to the bound, so a queued
call never waits while a worker is idle. When every worker is busy with a hung call, new calls
wait in the queue; a call that does not *start* within its timeout is cancelled (it will never
run) and reported as DONE_TIMEOUT with the reason "all N call workers busy". Nothing deadlocks;
calls fail fast-ish until hung functions return.
"""

from __future__ import annotations

import _thread
import logging
import queue
import threading
import time

import attrs

from aliecs_integration.plugin import is_nonblocking
from aliecs_integration.records import (
    CallContext,
    CallFunction,
    OpStatus,
)

log = logging.getLogger(__name__)

_PENDING, _RUNNING, _CANCELLED = 0, 1, 2


@attrs.frozen
class CallOutcome:
    """How one call ended: DONE_OK with ``output``, DONE_ERROR or DONE_TIMEOUT with ``error``."""

    status: OpStatus
    output: str = ""
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status is OpStatus.DONE_OK

def describe_exception(exc: BaseException) -> str:
    """``"ValueError: bad value"`` (or just the type name when the message is empty)."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__

class _Work:
    """One submitted call; ``done`` is a lock held until the worker has a result."""

    __slots__ = ("context", "done", "error", "fn", "result", "state")

    def __init__(self, fn: CallFunction, context: CallContext) -> None:
        self.fn = fn
        self.context = context
        self.done = _thread.allocate_lock()
        self.done.acquire()
        self.state = _PENDING
        self.result: object = None
        self.error: BaseException | None = None

class CallRunner:
    """Runs ``fn(context)`` on a worker thread and waits at most ``timeout_s`` for it, or runs it
    inline on the calling thread when ``fn`` is marked nonblocking (see the module doc).

    Thread-safe. :meth:`close` stops idle workers; calls made after it return DONE_ERROR.
    The hand-off is a bare lock per call (cheaper than a ``Future``'s condition variable).
    """

    def __init__(self, max_workers: int = 16, *, thread_name: str = "aliecs-call") -> None:
        if max_workers < 1:
            raise ValueError(f"max_workers must be at least 1, got {max_workers}")
        self.max_workers = max_workers
        self._thread_name = thread_name
        self._queue: queue.SimpleQueue[_Work | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0
        self._in_pool = 0
        self._closed = False

    @property
    def threads(self) -> int:
        """Worker threads alive (idle, busy or running an abandoned call)."""
        return self._threads

    @property
    def in_pool(self) -> int:
        """Calls queued or running, abandoned ones included."""
        return self._in_pool

    def run(self, fn: CallFunction, context: CallContext, timeout_s: float) -> CallOutcome:
        """Run ``fn(context)``; never raises (a ``KeyboardInterrupt`` of the calling thread
        propagates).

        DONE_OK with the returned text ("" for None); DONE_ERROR with the exception as text;
        DONE_TIMEOUT when ``timeout_s`` passes first (the worker is abandoned, see module doc).
        A nonblocking ``fn`` runs inline: DONE_TIMEOUT when it returned after ``timeout_s``.
        """
        if is_nonblocking(fn):
            return self._run_inline(fn, context, timeout_s)
        work = _Work(fn, context)
        with self._lock:
            if self._closed:
                return CallOutcome(OpStatus.DONE_ERROR, error="call runner is closed")
            self._in_pool += 1
            if self._in_pool > self._threads and self._threads < self.max_workers:
                self._threads += 1
                threading.Thread(
                    target=self._serve, name=f"{self._thread_name}-{self._threads}", daemon=True
                ).start()
        self._queue.put(work)
        if not work.done.acquire(timeout=min(timeout_s, threading.TIMEOUT_MAX)):
            return self._timed_out(work, timeout_s)
        return _finished(work.result, work.error)

    def _run_inline(self, fn: CallFunction, context: CallContext, timeout_s: float) -> CallOutcome:
        if self._closed:
            return CallOutcome(OpStatus.DONE_ERROR, error="call runner is closed")
        result: object = None
        error: BaseException | None = None
        start = time.monotonic()
        try:
            result = fn(context)
        except KeyboardInterrupt:
            raise
        except Exception as exc:
            error = exc
        except BaseException as exc:  # SystemExit & co.: the call fails, the manager goes on
            error = RuntimeError(describe_exception(exc))
        overrun = time.monotonic() - start - timeout_s
        outcome = _finished(result, error)
        if overrun <= 0:
            return outcome
        text = (
            f"ran {overrun:.3f}s past its timeout of {timeout_s:g}s (nonblocking, run inline: "
            "not interrupted); "
            + (f"it failed too: {outcome.error}" if outcome.error else "its output is discarded")
        )
        log.warning("environment %s: call %s %s", context.environment.id, context.func, text)
        return CallOutcome(OpStatus.DONE_TIMEOUT, error=text)

    def _timed_out(self, work: _Work, timeout_s: float) -> CallOutcome:
        with self._lock:
            never_started = work.state == _PENDING
            if never_started:
                work.state = _CANCELLED
        context = work.context
        if never_started:
            error = (
                f"did not start within {timeout_s:g}s: all {self.max_workers} call workers are "
                "busy (abandoned calls still running); the call was cancelled"
            )
            log.error("environment %s: call %s %s", context.environment.id, context.func, error)
        else:
            error = (
                f"timed out after {timeout_s:g}s; the call was abandoned and keeps running in "
                "its worker until it returns"
            )
            log.warning("environment %s: call %s %s", context.environment.id, context.func, error)
        return CallOutcome(OpStatus.DONE_TIMEOUT, error=error)

    def _serve(self) -> None:
        while True:
            work = self._queue.get()
            if work is None:
                with self._lock:
                    self._threads -= 1
                return
            with self._lock:
                runs = work.state == _PENDING
                work.state = _RUNNING if runs else work.state
            try:
                if runs:
                    try:
                        work.result = work.fn(work.context)
                    except Exception as exc:
                        work.error = exc
                    except BaseException as exc:  # SystemExit & co. must not end the worker
                        work.error = RuntimeError(describe_exception(exc))
                    work.done.release()
            finally:
                with self._lock:
                    self._in_pool -= 1

    def close(self) -> None:
        """Refuse new calls and stop idle workers; busy ones end after their call returns."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            threads = self._threads
        for _ in range(threads):
            self._queue.put(None)

def _finished(result: object, error: BaseException | None) -> CallOutcome:
    """The outcome of a call function that returned ``result`` or raised ``error``."""
    if error is not None:
        return CallOutcome(OpStatus.DONE_ERROR, error=describe_exception(error))
    if result is not None and not isinstance(result, str):
        return CallOutcome(
            OpStatus.DONE_ERROR,
            error=f"call function returned {type(result).__name__}, expected str or None",
        )
    return CallOutcome(OpStatus.DONE_OK, output=result or "")
