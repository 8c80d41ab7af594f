"""RunNumberStore: strictly increasing, persisted, shared safely between threads and processes."""

from __future__ import annotations

import multiprocessing
import threading
from pathlib import Path

import pytest

from aliecs_integration.engine.run_numbers import RunNumberError, RunNumberStore, default_path


def test_strictly_increasing_from_one(tmp_path: Path) -> None:
    store = RunNumberStore(tmp_path / "sub" / "run_number")
    assert store.last() == 0
    assert [store.next() for _ in range(5)] == [1, 2, 3, 4, 5]
    assert store.last() == 5
    assert (tmp_path / "sub" / "run_number").read_text() == "5\n"


def test_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "run_number"
    first = RunNumberStore(path)
    used = [first.next() for _ in range(3)]
    del first
    again = RunNumberStore(path)  # a new process would do exactly this
    assert again.next() == max(used) + 1


def test_continues_from_an_existing_number(tmp_path: Path) -> None:
    path = tmp_path / "run_number"
    path.write_text("561000\n")
    assert RunNumberStore(path).next() == 561001


@pytest.mark.parametrize("content", [b"", b"abc", b"12x", b"-3", b"1.5", b"\x00\x00"])
def test_corrupt_file_is_a_clear_error_and_is_left_alone(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "run_number"
    path.write_bytes(content)
    store = RunNumberStore(path)
    with pytest.raises(RunNumberError, match=f"{path}: corrupt run-number file"):
        store.next()
    assert path.read_bytes() == content


def test_exhausted(tmp_path: Path) -> None:
    path = tmp_path / "run_number"
    path.write_text(f"{2**32 - 1}")
    with pytest.raises(RunNumberError, match="exhausted"):
        RunNumberStore(path).next()


def test_unwritable_directory_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(RunNumberError, match="cannot open lock"):
        RunNumberStore(blocker / "run_number").next()


def test_default_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ALIECS_STATE_DIR", str(tmp_path))
    assert default_path() == tmp_path / "run_number"
    assert RunNumberStore().path == tmp_path / "run_number"
    monkeypatch.delenv("ALIECS_STATE_DIR")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert default_path() == tmp_path / "xdg" / "aliecs-integration" / "run_number"
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_path() == tmp_path / "home" / ".local/state/aliecs-integration/run_number"


def test_threads_never_share_a_number(tmp_path: Path) -> None:
    store = RunNumberStore(tmp_path / "run_number")
    results: list[list[int]] = [[] for _ in range(4)]

    def allocate(i: int) -> None:
        results[i].extend(store.next() for _ in range(25))

    threads = [threading.Thread(target=allocate, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    everything = [n for r in results for n in r]
    assert sorted(everything) == list(range(1, 101))
    assert all(r == sorted(r) for r in results)


def _allocate_in_process(path: str, count: int, start: object, out: str) -> None:
    store = RunNumberStore(path)
    start.wait(30)  # type: ignore[attr-defined]
    numbers = [store.next() for _ in range(count)]
    Path(out).write_text(" ".join(map(str, numbers)))


def test_two_processes_never_get_the_same_number(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    path = tmp_path / "run_number"
    start = ctx.Event()
    outs = [tmp_path / f"out{i}" for i in range(2)]
    procs = [
        ctx.Process(target=_allocate_in_process, args=(str(path), 60, start, str(out)))
        for out in outs
    ]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    per_process = [[int(n) for n in out.read_text().split()] for out in outs]
    for numbers in per_process:
        assert numbers == sorted(numbers) and len(set(numbers)) == 60
    assert sorted(per_process[0] + per_process[1]) == list(range(1, 121))
    assert RunNumberStore(path).next() == 121
