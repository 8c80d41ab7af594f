"""Run numbers never repeat, whatever happens to the files (issue 12, item 11): four processes
allocate while the files are deleted under them; one process continues after the file is
deleted between two runs."""

from __future__ import annotations

import multiprocessing
import threading
import time
from pathlib import Path

import pytest

from aliecs_integration.engine.run_numbers import RunNumberStore

pytestmark = [pytest.mark.reliability]


def test_deleting_the_file_mid_run_does_not_restart_at_one(tmp_path: Path) -> None:
    path = tmp_path / "run_number"
    store = RunNumberStore(path)
    assert [store.next() for _ in range(146)][-1] == 146
    path.unlink()
    assert store.next() == 147  # from the copy
    path.unlink()
    path.with_name("run_number.copy").unlink()
    assert RunNumberStore(path).next() == 148  # from the directory attribute or memory
    assert path.read_text() == "148\n"


def _allocate(path: str, count: int, start: object, out: str) -> None:
    store = RunNumberStore(path)
    start.wait(30)  # type: ignore[attr-defined]
    numbers = [store.next() for _ in range(count)]
    Path(out).write_text(" ".join(map(str, numbers)))


def test_four_processes_never_share_a_number_while_files_are_deleted(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    path = tmp_path / "run_number"
    start = ctx.Event()
    outs = [tmp_path / f"out{i}" for i in range(4)]
    procs = [ctx.Process(target=_allocate, args=(str(path), 240, start, str(out)))
             for out in outs]
    for p in procs:
        p.start()
    stop = threading.Event()
    deleted = [0]

    def delete() -> None:  # the file, its copy and any stray lock file, in turn
        victims = [path, path.with_name("run_number.copy"), path.with_name("run_number.lock")]
        i = 0
        while not stop.is_set():
            try:
                victims[i % 3].unlink()
                deleted[0] += 1
            except FileNotFoundError:
                pass
            i += 1
            time.sleep(0.002)

    deleter = threading.Thread(target=delete)
    deleter.start()
    start.set()
    try:
        for p in procs:
            p.join(120)
            assert p.exitcode == 0
    finally:
        stop.set()
        deleter.join()
    per_process = [[int(n) for n in out.read_text().split()] for out in outs]
    everything = [n for numbers in per_process for n in numbers]
    assert deleted[0] > 10
    for numbers in per_process:
        assert numbers == sorted(numbers) and len(set(numbers)) == 240
    duplicates = len(everything) - len(set(everything))
    assert duplicates == 0, f"{duplicates} duplicate run numbers"
