"""The docs: generated pages and diagrams match the code, and the site builds with
``mkdocs build --strict`` (a broken link fails it)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from aliecs_integration.cli import docgen
from aliecs_integration.engine import fsm
from aliecs_integration.engine.fsm_diagram import state_diagram

ROOT = Path(__file__).resolve().parents[1]


def test_generated_docs_and_diagrams_are_up_to_date() -> None:
    assert docgen.stale(ROOT) == [], "run python -m aliecs_integration.cli.docgen"
    readme = (ROOT / "README.md").read_text()
    assert docgen.mermaid(state_diagram()) in readme
    assert docgen.mermaid(docgen.data_path_diagram()) in readme


def test_state_diagram_has_one_arrow_per_allowed_transition() -> None:
    arrows = {line.strip() for line in state_diagram().splitlines() if "-->" in line}
    expected = {f"{s} --> {target}: {name}"
                for name, (sources, target) in fsm.TRANSITIONS.items() for s in sources}
    expected |= {"[*] --> environment: CREATE", "[*] --> STANDBY",
                 "environment --> [*]: DESTROY (from any state)"}
    assert arrows == expected
    states_in_table = {s for sources, target in fsm.TRANSITIONS.values()
                       for s in (*sources, target)}
    assert states_in_table == set(fsm.REAL_STATES)  # every state is drawn


def build(config: Path, site: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), "-d", str(site)],
        capture_output=True, text=True, timeout=300, check=False, stdin=subprocess.DEVNULL,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})


def test_mkdocs_strict_build(tmp_path: Path) -> None:
    result = build(ROOT / "mkdocs.yml", tmp_path / "site")
    assert result.returncode == 0, result.stderr[-4000:]
    for page in ("index.html", "cli/index.html", "metrics/index.html", "settings/index.html",
                 "events/index.html", "plugins/index.html", "state-machine/index.html"):
        assert (tmp_path / "site" / page).is_file(), page
    cli_page = (tmp_path / "site" / "cli" / "index.html").read_text()
    assert "aliecs-integration consume" in cli_page and "--raw" in cli_page
    assert 'class="mermaid"' in (tmp_path / "site" / "index.html").read_text()

    broken = tmp_path / "broken"  # the same site with one dead link must fail
    shutil.copytree(ROOT / "docs", broken / "docs")
    shutil.copy(ROOT / "mkdocs.yml", broken / "mkdocs.yml")
    dead = "gauges" + ".md"  # a page that does not exist
    with (broken / "docs" / "metrics.md").open("a") as page:
        page.write(f"\nSee [the gauges]({dead}).\n")
    failed = build(broken / "mkdocs.yml", tmp_path / "site2")
    assert failed.returncode != 0
    assert dead in failed.stderr
