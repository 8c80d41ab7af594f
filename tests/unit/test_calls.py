"""CallRunner: results, errors, timeouts, a bounded pool that never deadlocks."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from aliecs_integration.calls import CallRunner, describe_exception
from aliecs_integration.records import CallContext, CallTraits, EnvironmentSnapshot, OpStatus

CONTEXT = CallContext(
    environment=EnvironmentSnapshot(id="env1", state="CONFIGURED"),
    func="test.F()", trigger="enter_CONFIGURED", args="", traits=CallTraits("enter_CONFIGURED"),
)


@pytest.fixture
def runner() -> Iterator[CallRunner]:
    r = CallRunner(2, thread_name="test-call")
    yield r
    r.close()


def test_returns_output_and_passes_the_context(runner: CallRunner) -> None:
    seen: list[CallContext] = []

    def fn(ctx: CallContext) -> str:
        seen.append(ctx)
        return f"hello {threading.current_thread().name}"

    outcome = runner.run(fn, CONTEXT, 5.0)
    assert outcome.status is OpStatus.DONE_OK and outcome.ok
    assert outcome.output.startswith("hello test-call-")  # ran on a worker thread
    assert seen == [CONTEXT]


def test_none_is_empty_output(runner: CallRunner) -> None:
    assert runner.run(lambda ctx: None, CONTEXT, 5.0).output == ""


def test_exception_is_done_error_with_text(runner: CallRunner) -> None:
    def fn(ctx: CallContext) -> str:
        raise ValueError("bad detector")

    outcome = runner.run(fn, CONTEXT, 5.0)
    assert outcome.status is OpStatus.DONE_ERROR
    assert outcome.error == "ValueError: bad detector"


def test_base_exception_does_not_kill_the_worker(runner: CallRunner) -> None:
    def fn(ctx: CallContext) -> str:
        raise SystemExit(3)

    assert runner.run(fn, CONTEXT, 5.0).status is OpStatus.DONE_ERROR
    assert runner.run(lambda ctx: "still here", CONTEXT, 5.0).output == "still here"


def test_non_string_result_is_an_error(runner: CallRunner) -> None:
    outcome = runner.run(lambda ctx: 42, CONTEXT, 5.0)  # type: ignore[arg-type,return-value]
    assert outcome.status is OpStatus.DONE_ERROR
    assert "returned int" in outcome.error


def test_timeout_abandons_the_call(runner: CallRunner) -> None:
    release = threading.Event()
    finished = threading.Event()

    def hang(ctx: CallContext) -> str:
        release.wait(10)
        finished.set()
        return "late"

    start = time.monotonic()
    outcome = runner.run(hang, CONTEXT, 0.2)
    elapsed = time.monotonic() - start
    assert outcome.status is OpStatus.DONE_TIMEOUT
    assert "timed out after 0.2s" in outcome.error
    assert 0.19 <= elapsed < 2.0
    assert runner.run(lambda ctx: "ok", CONTEXT, 5.0).output == "ok"  # the other worker serves
    release.set()
    assert finished.wait(5)


def test_full_pool_times_out_without_deadlock_and_never_runs_the_cancelled_call() -> None:
    runner = CallRunner(1)
    release = threading.Event()
    ran: list[str] = []
    try:
        assert runner.run(lambda ctx: str(release.wait(10)), CONTEXT, 0.2).status \
            is OpStatus.DONE_TIMEOUT
        def queued(ctx: CallContext) -> str:
            ran.append("queued")
            return "x"

        outcome = runner.run(queued, CONTEXT, 0.2)
        assert outcome.status is OpStatus.DONE_TIMEOUT
        assert "did not start within 0.2s: all 1 call workers are busy" in outcome.error
        assert runner.threads == 1
        release.set()
        assert runner.run(lambda ctx: "after", CONTEXT, 5.0).output == "after"
        assert ran == []  # the cancelled call never ran
    finally:
        release.set()
        runner.close()


def test_pool_is_bounded_and_uses_daemon_threads() -> None:
    runner = CallRunner(3, thread_name="bounded")
    gate = threading.Event()
    try:
        threads = [
            threading.Thread(target=runner.run, args=(lambda ctx: str(gate.wait(5)), CONTEXT, 5.0))
            for _ in range(6)
        ]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 5
        while runner.in_pool < 6 and time.monotonic() < deadline:
            time.sleep(0.01)
        workers = [t for t in threading.enumerate() if t.name.startswith("bounded-")]
        assert runner.threads == 3 and len(workers) == 3
        assert all(t.daemon for t in workers)
        gate.set()
        for t in threads:
            t.join(5)
        assert runner.in_pool == 0
    finally:
        gate.set()
        runner.close()


def test_closed_runner_refuses_calls_and_stops_workers() -> None:
    runner = CallRunner(2, thread_name="closing")
    assert runner.run(lambda ctx: "x", CONTEXT, 5.0).ok
    runner.close()
    outcome = runner.run(lambda ctx: "x", CONTEXT, 5.0)
    assert outcome.status is OpStatus.DONE_ERROR and "closed" in outcome.error
    deadline = time.monotonic() + 5
    while runner.threads and time.monotonic() < deadline:
        time.sleep(0.01)
    assert runner.threads == 0


def test_invalid_pool_size() -> None:
    with pytest.raises(ValueError, match="max_workers must be at least 1"):
        CallRunner(0)


def test_describe_exception() -> None:
    assert describe_exception(KeyError("x")) == "KeyError: 'x'"
    assert describe_exception(RuntimeError()) == "RuntimeError"
