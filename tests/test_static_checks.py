"""ruff and mypy --strict stay clean (the project's typed-API and style rules, checked in CI)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("bash") is None, reason="dev/lint is a bash script")
def test_ruff_and_mypy_clean() -> None:
    venv = Path(sys.prefix)
    result = subprocess.run(
        [str(ROOT / "dev" / "lint")], capture_output=True, text=True, timeout=540,
        env={"PATH": "/usr/bin:/bin", "ALIECS_VENV": str(venv), "HOME": str(Path.home())},
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
