"""We claim only the Python versions we test: every ``Programming Language :: Python :: 3.X``
classifier of setup.cfg has an interpreter here, and the unit tests pass on each (``dev/pythons``;
the suite itself runs on one of them)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def claimed() -> list[str]:
    return re.findall(r"^\s*Programming Language :: Python :: (3\.\d+)\s*$",
                      (ROOT / "setup.cfg").read_text(), re.MULTILINE)


def test_the_suite_runs_on_a_claimed_version() -> None:
    assert f"{sys.version_info.major}.{sys.version_info.minor}" in claimed()
    python_requires = re.search(r"python_requires = >=(3\.\d+)", (ROOT / "setup.cfg").read_text())
    assert python_requires is not None and python_requires[1] == min(
        claimed(), key=lambda v: int(v.split(".")[1]))


@pytest.mark.slow
@pytest.mark.timeout(1800)  # cold: new venvs, wheels fetched from PyPI
def test_unit_tests_pass_on_every_other_claimed_version() -> None:
    found = subprocess.run([str(ROOT / "dev" / "pythons"), "--list"], capture_output=True,
                           text=True, timeout=60, check=False)
    assert found.returncode == 0, found.stderr
    assert [line.split()[0] for line in found.stdout.splitlines()] == claimed()
    current = f"{sys.version_info.major}.{sys.version_info.minor}"
    result = subprocess.run([str(ROOT / "dev" / "pythons"), "--skip", current], capture_output=True,
                            text=True, timeout=1500, check=False, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for version in claimed():
        if version != current:
            assert f"== Python {version} (" in result.stderr
    assert result.stdout.count(" passed") == len(claimed()) - 1
