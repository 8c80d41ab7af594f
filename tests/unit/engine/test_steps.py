"""CallRunner: results, errors, timeouts, a bounded pool that never deadlocks; nonblocking calls
run inline; run_call's events."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from aliecs_integration.engine.call_runner import CallOutcome, CallRunner, describe_exception
from aliecs_integration.engine.environment import Environment
from aliecs_integration.engine.steps import CallPlan, run_call
from aliecs_integration.engine.workflow import CallSpec, Workflow
from aliecs_integration.plugin import is_nonblocking, nonblocking
from aliecs_integration.records import (
    CallContext,
    CallEvent,
    CallFunction,
    CallTraits,
    EnvironmentSnapshot,
    OpStatus,
)

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


# ---------------------------------------------------------------- nonblocking: run inline


class Functions:
    """A plugin-like object: one method marked nonblocking, one not."""

    def __init__(self) -> None:
        self.threads: list[str] = []

    @nonblocking
    def quick(self, ctx: CallContext) -> str:
        self.threads.append(threading.current_thread().name)
        return f"quick {ctx.trigger}"

    def slow(self, ctx: CallContext) -> str:
        self.threads.append(threading.current_thread().name)
        return "slow"


def test_nonblocking_bound_method_runs_inline_and_unmarked_one_on_a_worker(
    runner: CallRunner,
) -> None:
    functions = Functions()
    quick = runner.run(functions.quick, CONTEXT, 5.0)
    assert (quick.status, quick.output) == (OpStatus.DONE_OK, "quick enter_CONFIGURED")
    assert runner.threads == 0  # no worker was needed
    assert runner.run(functions.slow, CONTEXT, 5.0).output == "slow"
    assert functions.threads[0] == threading.current_thread().name
    assert functions.threads[1].startswith("test-call-")
    assert runner.threads == 1


def test_nonblocking_results_and_errors_like_the_worker_path(runner: CallRunner) -> None:
    @nonblocking
    def none(ctx: CallContext) -> None:
        return None

    @nonblocking
    def fail(ctx: CallContext) -> str:
        raise ValueError("bad detector")

    @nonblocking
    def leave(ctx: CallContext) -> str:
        raise SystemExit(3)

    @nonblocking
    def number(ctx: CallContext) -> str:
        return 42  # type: ignore[return-value]

    assert runner.run(none, CONTEXT, 5.0) == CallOutcome(OpStatus.DONE_OK, output="")
    assert runner.run(fail, CONTEXT, 5.0) == CallOutcome(
        OpStatus.DONE_ERROR, error="ValueError: bad detector")
    assert runner.run(leave, CONTEXT, 5.0) == CallOutcome(
        OpStatus.DONE_ERROR, error="RuntimeError: SystemExit: 3")
    outcome = runner.run(number, CONTEXT, 5.0)
    assert outcome.status is OpStatus.DONE_ERROR and "returned int" in outcome.error
    assert runner.threads == 0


def test_nonblocking_keyboard_interrupt_propagates(runner: CallRunner) -> None:
    @nonblocking
    def interrupted(ctx: CallContext) -> str:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        runner.run(interrupted, CONTEXT, 5.0)


def test_nonblocking_overrun_is_a_timeout_reported_when_it_returns(
    runner: CallRunner, caplog: pytest.LogCaptureFixture
) -> None:
    @nonblocking
    def overrun(ctx: CallContext) -> str:
        time.sleep(0.05)
        return "too late"

    start = time.monotonic()
    outcome = runner.run(overrun, CONTEXT, 0.01)
    assert time.monotonic() - start >= 0.05  # not interrupted: it ran to its end
    assert outcome.status is OpStatus.DONE_TIMEOUT and outcome.output == ""
    assert re.fullmatch(
        r"ran 0\.0\d\ds past its timeout of 0\.01s \(nonblocking, run inline: not "
        r"interrupted\); its output is discarded", outcome.error), outcome.error
    assert "environment env1: call test.F() ran 0.0" in caplog.text


def test_nonblocking_overrun_that_also_fails_says_both(runner: CallRunner) -> None:
    @nonblocking
    def overrun(ctx: CallContext) -> str:
        time.sleep(0.03)
        raise OSError("disk full")

    outcome = runner.run(overrun, CONTEXT, 0.001)
    assert outcome.status is OpStatus.DONE_TIMEOUT
    assert "past its timeout of 0.001s" in outcome.error
    assert outcome.error.endswith("it failed too: OSError: disk full")


def test_unmarked_hanging_function_still_times_out_on_its_worker(runner: CallRunner) -> None:
    release = threading.Event()

    def hang(ctx: CallContext) -> str:
        release.wait(10)
        return "late"

    assert not is_nonblocking(hang)
    start = time.monotonic()
    outcome = runner.run(hang, CONTEXT, 0.1)
    assert time.monotonic() - start < 2.0
    assert outcome.status is OpStatus.DONE_TIMEOUT
    assert "timed out after 0.1s; the call was abandoned" in outcome.error
    release.set()


def test_closed_runner_refuses_nonblocking_calls_too() -> None:
    runner = CallRunner(1)
    runner.close()
    ran: list[str] = []
    outcome = runner.run(nonblocking(lambda ctx: ran.append("x") or "x"), CONTEXT, 5.0)
    assert (outcome.status, outcome.error) == (OpStatus.DONE_ERROR, "call runner is closed")
    assert ran == []


class RecordingHost:
    def __init__(self, functions: dict[str, CallFunction]) -> None:
        self.functions = functions
        self.calls: list[CallEvent] = []

    def fire(self, hook: Callable[..., None], event: object) -> list[object]:
        assert hook.__name__ == "on_call" and isinstance(event, CallEvent)
        self.calls.append(event)
        return []

    def call_function(self, qualified_name: str) -> CallFunction | None:
        return self.functions.get(qualified_name)


@pytest.mark.parametrize(("sleep_s", "status"), [(0.0, OpStatus.DONE_OK),
                                                  (0.05, OpStatus.DONE_TIMEOUT)])
def test_run_call_events_for_an_inline_call(
    runner: CallRunner, sleep_s: float, status: OpStatus
) -> None:
    @nonblocking
    def publish(ctx: CallContext) -> str:
        time.sleep(sleep_s)
        return f"published from {threading.current_thread().name}"

    host = RecordingHost({"p.Publish": publish})
    env = Environment("envX")
    spec = CallSpec("p.Publish()", "enter_CONFIGURED", timeout=0.02, return_var="out")
    [call] = CallPlan(Workflow("wf", calls=[spec]), 30.0).at("enter_CONFIGURED")[1]
    error = run_call(host, runner, env, call, "enter_CONFIGURED")
    assert [(e.func, e.status) for e in host.calls] == [
        ("p.Publish()", OpStatus.STARTED), ("p.Publish()", status)]
    if status is OpStatus.DONE_OK:
        assert error is None
        assert env.get("out") == host.calls[1].output == (
            f"published from {threading.current_thread().name}")
    else:
        assert error is not None and "DONE_TIMEOUT: ran 0.0" in error[1]
        assert error[0] == host.calls[1].error  # the call's own error, as steps publish it
        assert "past its timeout of 0.02s" in host.calls[1].error
        assert env.get("out") is None  # an overrun's output is not stored
