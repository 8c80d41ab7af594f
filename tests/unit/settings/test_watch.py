"""The settings watch with a file source: validation first, refusals, the outage said once,
backoff, polling and trigger (SIGHUP). Consul's blocking queries and a real outage are in
``tests/integration/test_live_settings*.py``."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from aliecs_integration.settings.core import Settings
from aliecs_integration.settings.sources import load_file
from aliecs_integration.settings.watch import Backoff, SettingsWatcher, WatchStatus


class Applied:
    def __init__(self, fail: bool = False) -> None:
        self.calls: list[Settings] = []
        self.fail = fail

    def __call__(self, new: Settings) -> None:
        if self.fail:
            raise RuntimeError("plugin exploded")
        self.calls.append(new)


def write(path: Path, data: Any) -> None:
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    st = path.stat()  # a distinct mtime even within the file system's granularity
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


@pytest.fixture
def doc(tmp_path: Path) -> Path:
    path = tmp_path / "settings.yaml"
    write(path, {"enableKafka": False, "runtimeVars": {"kafka_enabled": "false"}})
    return path


def watcher_for(path: Path, apply: Applied, **kw: Any) -> SettingsWatcher:
    return SettingsWatcher(str(path), load_file(path), apply, **kw)


def test_valid_change_applied_and_counted(doc: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="aliecs_integration.settings.watch")
    apply = Applied()
    w = watcher_for(doc, apply)
    assert w.reload().outcome == "unchanged" and apply.calls == []
    write(doc, {"enableKafka": False, "runtimeVars": {"kafka_enabled": "true"}})
    result = w.reload()
    assert result.outcome == "applied"
    assert [str(c) for c in result.changes] == ["runtimeVars.kafka_enabled: 'false' -> 'true'"]
    assert len(apply.calls) == 1 and apply.calls[0].runtime_vars["kafka_enabled"] == "true"
    assert w.current is apply.calls[0]
    assert w.status() == WatchStatus(str(doc), applied=1)
    assert any("applied: runtimeVars.kafka_enabled: 'false' -> 'true'" in r.getMessage()
               for r in caplog.records)


@pytest.mark.parametrize(("text", "key", "expected"), [
    ({"enableKafka": "yes"}, "enableKafka", "expected a boolean"),
    ({"kafkaEndpoints": ["nohost"]}, "kafkaEndpoints[0]", "expected a 'host:port' string"),
    ({"kafkaProducer": {"queue": {"overflow": "sometimes"}}}, "kafkaProducer.queue.overflow",
     "expected one of"),
    ({"integrationPlugin": ["kafka"]}, "integrationPlugin", "did you mean `integrationPlugins`"),
    ("enableKafka: [unclosed\n", None, "line"),
    ({"runtimeVars": {"a/b": "1"}}, "runtimeVars", ""),
])
def test_invalid_document_refused_nothing_changes(
        doc: Path, caplog: pytest.LogCaptureFixture, text: Any, key: str | None,
        expected: str) -> None:
    apply = Applied()
    w = watcher_for(doc, apply)
    before = w.current
    write(doc, text)
    result = w.reload()
    assert result.outcome == "refused" and apply.calls == [] and w.current is before
    assert result.error is not None and str(doc) in result.error and expected in result.error
    if key is not None:
        assert f"key '{key}'" in result.error
    status = w.status()
    assert status.refused == 1 and status.applied == 0 and status.reachable
    assert status.last_refusal == result.error
    errors = [r for r in caplog.records if r.levelno == logging.ERROR and "refused" in
              r.getMessage()]
    assert len(errors) == 1 and "running settings are kept" in errors[0].getMessage()
    # the same invalid document again: not counted or logged twice
    assert w.reload().outcome == "refused" and w.status().refused == 1
    # a valid one afterwards applies
    write(doc, {"enableKafka": True})
    assert w.reload().outcome == "applied" and w.status().applied == 1


def test_apply_failure_refuses_and_keeps_settings(doc: Path) -> None:
    w = watcher_for(doc, Applied(fail=True))
    before = w.current
    write(doc, {"enableKafka": True})
    result = w.reload()
    assert result.outcome == "refused" and "not applied: plugin exploded" in (result.error or "")
    assert w.current is before and w.status().refused == 1


def test_unreadable_source_said_once_and_back(doc: Path,
                                              caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="aliecs_integration.settings.watch")
    w = watcher_for(doc, Applied())
    before = w.current
    doc.rename(doc.with_suffix(".away"))
    for _ in range(4):
        assert w.reload().outcome == "unreachable"
    status = w.status()
    assert not status.reachable and status.watch_errors == 4 and status.refused == 0
    assert status.last_error is not None and str(doc) in status.last_error
    assert w.current is before
    warned = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warned) == 1 and "keeping the last good settings" in warned[0].getMessage()
    doc.with_suffix(".away").rename(doc)
    assert w.reload().outcome == "unchanged"
    assert w.status().reachable
    back = [r for r in caplog.records if "reachable again" in r.getMessage()]
    assert len(back) == 1 and "after 4 failed attempt(s)" in back[0].getMessage()


def test_backoff_doubles_up_to_the_cap_with_jitter() -> None:
    b = Backoff(initial_s=0.5, max_s=4.0)
    assert [b.delay(n, lambda: 1.0) for n in range(1, 6)] == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert [b.delay(n, lambda: 0.0) for n in range(1, 6)] == [0.25, 0.5, 1.0, 2.0, 2.0]
    delays = {b.delay(3) for _ in range(50)}
    assert all(1.0 <= d < 2.0 for d in delays) and len(delays) > 1


@pytest.fixture
def running(doc: Path) -> Iterator[tuple[SettingsWatcher, Applied]]:
    apply = Applied()
    w = watcher_for(doc, apply, poll_s=0.02)
    w.start()
    yield w, apply
    w.stop()


def wait_for(predicate: Any, what: str) -> None:
    deadline = time.monotonic() + 60
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_file_change_is_noticed_by_polling(doc: Path,
                                           running: tuple[SettingsWatcher, Applied]) -> None:
    w, apply = running
    write(doc, {"enableKafka": True})
    wait_for(lambda: w.status().applied == 1, "the change applied")
    assert apply.calls[0].enable_kafka is True


def test_trigger_reads_again(doc: Path, tmp_path: Path) -> None:
    apply = Applied()
    w = watcher_for(doc, apply, poll_s=3600)  # polling out of the way: only trigger reads
    w.start()
    try:
        original = doc.stat()
        doc.write_text(yaml.safe_dump({"enableKafka": True}))
        os.utime(doc, ns=(original.st_atime_ns, original.st_mtime_ns))
        w.trigger()
        wait_for(lambda: w.status().applied == 1, "the triggered reload")
    finally:
        w.stop()


def test_a_read_begun_before_the_outage_does_not_end_it(
    doc: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A read that began before the source went away and succeeded after (as a Consul
    blocking query answered while the agent shuts down) must not say 'reachable again': the
    outage is said once, and ends only with a read begun during it."""
    import threading

    from aliecs_integration.settings import watch

    caplog.set_level(logging.DEBUG, logger="aliecs_integration.settings.watch")
    gate, reading = threading.Event(), threading.Event()
    real_read = watch.read_file
    early = real_read(doc)

    def slow_first_read(path: Path) -> Any:
        if not reading.is_set():
            reading.set()
            gate.wait(30)
            return early  # read before the outage, answered after it began
        return real_read(path)

    monkeypatch.setattr(watch, "read_file", slow_first_read)
    w = watcher_for(doc, Applied(), poll_s=0.02)
    w.start()
    try:
        first = threading.Thread(target=w.reload)
        first.start()
        assert reading.wait(30)
        doc.rename(doc.with_suffix(".away"))  # the poller sees the outage
        wait_for(lambda: not w.status().reachable, "the outage")
        gate.set()
        first.join(30)
        assert not w.status().reachable  # the early read proved nothing
        doc.with_suffix(".away").rename(doc)
        wait_for(lambda: w.status().reachable, "the source back")
    finally:
        w.stop()
    said = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert [m for m in said if "cannot be read" in m] != []
    assert len([m for m in said if "cannot be read" in m]) == 1, said
    assert len([m for m in said if "reachable again" in m]) == 1, said
