"""The one YAML reader: limits, regular files only, binary refused, duplicate keys refused."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from aliecs_integration import safe_yaml
from aliecs_integration.engine.workflow import Workflow, WorkflowError
from aliecs_integration.scenario.model import ScenarioError, load_scenario

LAUGHS = "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8)
)
BOMB = 'a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n' + LAUGHS


def test_billion_laughs_is_refused_fast() -> None:
    assert len(BOMB) < 1024
    started = time.monotonic()
    with pytest.raises(safe_yaml.YamlInputError, match="aliases are expanded"):
        safe_yaml.parse(BOMB)
    assert time.monotonic() - started < 5


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("a: &a [*a]\n", "recursive alias"),
        ("a: 1\na: 2\n", "duplicate key 'a' at line 2"),
        ("x:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, 80)), "nested deeper than 64"),
        ("[" * 3000, "malformed YAML"),
        ("a: \x00", "NUL"),
        ("- " + ", ".join(["*x"] * 1001), "aliases"),
    ],
)
def test_hostile_documents(text: str, fragment: str) -> None:
    if fragment == "aliases":
        text = "- &x 1\n" + "".join("- *x\n" for _ in range(1001))
    with pytest.raises(safe_yaml.YamlInputError, match=fragment):
        safe_yaml.parse(text)


def test_too_many_values() -> None:
    text = "".join(f"- {i}\n" for i in range(safe_yaml.MAX_NODES + 1))
    with pytest.raises(safe_yaml.YamlInputError, match="more than 250000 values"):
        safe_yaml.parse(text)


def test_special_files_are_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for path, fragment in [(fifo, "FIFO"), (Path("/dev/zero"), "device"), (tmp_path, "directory")]:
        started = time.monotonic()
        with pytest.raises(safe_yaml.YamlInputError, match=fragment):
            safe_yaml.read_text(path)
        assert time.monotonic() - started < 2


def test_large_and_binary_files(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_bytes(b"a: 1\n" * (safe_yaml.MAX_BYTES // 5 + 1))
    with pytest.raises(safe_yaml.YamlInputError, match="larger than"):
        safe_yaml.read_text(big)
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"a: \xff\xfe")
    with pytest.raises(safe_yaml.YamlInputError, match="not UTF-8 at byte offset 3"):
        safe_yaml.read_text(binary)


def test_read_timeout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gate = threading.Event()
    real_read = os.read
    monkeypatch.setattr(safe_yaml.os, "read", lambda fd, n: gate.wait(3) and real_read(fd, n))
    path = tmp_path / "slow.yaml"
    path.write_text("a: 1\n")
    with pytest.raises(safe_yaml.YamlInputError, match=r"not read within 0\.2 s"):
        safe_yaml.read_text(path, timeout_s=0.2)
    gate.set()


def test_scenario_and_workflow_use_the_same_reader(tmp_path: Path) -> None:
    dup = tmp_path / "dup.yaml"
    dup.write_text("environments:\n  - id: a\n    actions: [DEPLOY]\n    actions: [destroy]\n")
    with pytest.raises(ScenarioError, match=f"{dup}: duplicate key 'actions' at line 4"):
        load_scenario(dup)
    binary = tmp_path / "wf.yaml"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    with pytest.raises(WorkflowError, match=f"{binary}: binary data"):
        Workflow.from_yaml(binary)
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(BOMB)
    with pytest.raises(ScenarioError, match=r"bomb\.yaml: more than"):
        load_scenario(bomb)


@pytest.mark.parametrize("value", [".inf", ".nan", "-.inf", "1e400"])
def test_non_finite_sleep_and_timeout_are_refused(tmp_path: Path, value: str) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(f"environments:\n  - id: a\n    actions: [{{sleep: {value}}}]\n")
    with pytest.raises(ScenarioError, match="key 'sleep': expected seconds from 0 to 86400"):
        load_scenario(path)
    wf = tmp_path / "wf.yaml"
    wf.write_text("name: w\ncalls:\n"
                  f"  - {{func: a.B(), trigger: after_DEPLOY, timeout: {value}}}\n")
    with pytest.raises(WorkflowError, match="timeout"):
        Workflow.from_yaml(wf)


def test_timed_out_reader_keeps_its_descriptor_until_it_stops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reader that outlives the timeout must not read a descriptor number reused by the next
    open (this once made a later test read an empty file): the descriptor stays open, with the
    same file behind it, until the reader stops, and is closed then."""
    gate = threading.Event()
    real_read = os.read
    seen: list[int] = []

    def slow_read(fd: int, n: int) -> bytes:
        seen.append(fd)
        gate.wait(10)
        return real_read(fd, n)

    monkeypatch.setattr(safe_yaml.os, "read", slow_read)
    path = tmp_path / "slow.yaml"
    path.write_text("a: 1\n")
    with pytest.raises(safe_yaml.YamlInputError, match=r"not read within 0\.2 s"):
        safe_yaml.read_text(path, timeout_s=0.2)
    fd = seen[0]
    assert os.fstat(fd).st_ino == path.stat().st_ino  # still open, still that file
    other = tmp_path / "other.yaml"
    other.write_text("b: 2\n")
    monkeypatch.setattr(safe_yaml.os, "read", real_read)
    gate.set()
    assert safe_yaml.read_text(other) == "b: 2\n"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if os.fstat(fd).st_ino != path.stat().st_ino:
                break  # closed and the number reused by someone else
        except OSError:
            break  # closed
        time.sleep(0.01)
    else:
        pytest.fail(f"descriptor {fd} still open 10 s after the reader was released")
