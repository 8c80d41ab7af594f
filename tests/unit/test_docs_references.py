"""The project documents itself: every Markdown file a source file or a document names exists.

Source files (``.py`` under the package, the built-in plugins, the tests, the benchmarks and the
examples; the ``.proto`` files; the ``dev/`` scripts) may name a Markdown file by a relative path
(``docs/<name>.md``) or by its bare name; a bare name resolves against ``docs/``, the repository
root or the naming file's own folder. The documents (README files and ``docs/``) link each other
by relative links, whose ``#anchors`` must name a heading of the target.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PY_DIRS = ("aliecs_integration", "plugins", "tests", "bench", "examples")
SKIPPED_PARTS = {".venv", "__pycache__", "build", "dist", ".git", ".mypy_cache", ".ruff_cache"}

_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://\S+", re.IGNORECASE)
# A Markdown file name, with an optional relative folder path, not the tail of a longer word.
_MD_NAME = re.compile(r"(?<![\w./-])((?:[\w.-]+/)*[\w-]+\.md)\b")
_MD_LINK = re.compile(r"\]\(([^()\s]+)\)")
_HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$")


def _kept(path: Path) -> bool:
    return not SKIPPED_PARTS.intersection(path.relative_to(ROOT).parts) and path.is_file()


def source_files() -> list[Path]:
    """Every file whose docstrings and comments may cite a document."""
    files = [p for d in PY_DIRS for p in sorted((ROOT / d).rglob("*.py"))]
    files += sorted((ROOT / "protos").glob("*.proto"))
    files += [p for p in sorted((ROOT / "dev").iterdir()) if p.suffix != ".md"]
    return [p for p in files if _kept(p)]


def documents() -> list[Path]:
    """The repository's own Markdown documents."""
    found = sorted(ROOT.glob("*.md"))
    for folder in ("docs", "dev", "bench", "examples", *PY_DIRS):
        found += sorted((ROOT / folder).rglob("*.md"))
    return sorted({p for p in found if _kept(p)})


def named_markdown(text: str) -> Iterator[tuple[int, str]]:
    """(line number, name) of every Markdown file named in ``text``, URLs left out."""
    for number, line in enumerate(text.splitlines(), start=1):
        for match in _MD_NAME.finditer(_URL.sub(" ", line)):
            yield number, match.group(1)


def resolves(name: str, naming_file: Path) -> bool:
    """True when ``name`` names a file of the repository (see the module docstring)."""
    bases: Iterable[Path] = (naming_file.parent, ROOT)
    if "/" not in name:
        bases = (ROOT / "docs", *bases)
    return any((base / name).resolve().is_file() for base in bases)


def missing_names(path: Path, text: str) -> list[str]:
    """``path:line: name`` of every named Markdown file that does not exist."""
    rel = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    return [f"{rel}:{n}: {name}" for n, name in named_markdown(text) if not resolves(name, path)]


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as ``-``."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(document: Path) -> set[str]:
    """Every heading anchor of ``document`` (repeated headings get ``-1``, ``-2``, ...)."""
    seen: dict[str, int] = {}
    result: set[str] = set()
    in_code = False
    for line in document.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_code = not in_code
        match = None if in_code else _HEADING.match(line)
        if match:
            base = slug(match.group(1))
            count = seen.get(base, 0)
            seen[base] = count + 1
            result.add(base if count == 0 else f"{base}-{count}")
    return result


def broken_links(document: Path, root: Path = ROOT) -> list[str]:
    """``path: target`` of every relative link whose file or heading anchor does not exist."""
    broken = []
    for target in _MD_LINK.findall(document.read_text(encoding="utf-8")):
        if _URL.match(target) or target.startswith("mailto:"):
            continue
        file_part, _, anchor = target.partition("#")
        linked = (document.parent / file_part).resolve() if file_part else document
        ok = linked.exists()
        if ok and anchor and linked.suffix == ".md":
            ok = anchor in anchors(linked)
        if not ok:
            broken.append(f"{document.relative_to(root)}: {target}")
    return broken


def test_the_contract_documents_exist() -> None:
    for name in ("lifecycle", "events", "wire-schema", "settings", "plugins", "architecture"):
        assert (ROOT / "docs" / f"{name}.md").is_file(), name


def test_sources_scanned_include_package_plugins_tests_and_protos() -> None:
    rels = {p.relative_to(ROOT).parts[0] for p in source_files()}
    assert {"aliecs_integration", "plugins", "tests", "bench", "protos", "dev"} <= rels
    assert Path(__file__).resolve() in source_files()


def test_no_source_file_names_a_missing_markdown_file() -> None:
    missing = [
        entry
        for path in source_files()
        for entry in missing_names(path, path.read_text(encoding="utf-8", errors="replace"))
    ]
    assert not missing, "files name Markdown files the repository lacks:\n" + "\n".join(missing)


def test_no_document_links_a_missing_file_or_heading() -> None:
    broken = [entry for doc in documents() for entry in broken_links(doc)]
    assert not broken, "broken relative links:\n" + "\n".join(broken)


# The checks themselves: a missing name is reported, an existing one is not. Names are built at
# run time so that this file does not itself cite a missing document.
NOWHERE = "no-such-" + "document"
MD = ".md"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f'"""Rules (``{NOWHERE}.md`` section 2)."""', [f"{NOWHERE}.md"]),
        (f"# see shared/spec/{NOWHERE}.md", [f"shared/spec/{NOWHERE}.md"]),
        (f"# see docs/{NOWHERE}.md#part and ../{NOWHERE}.md's table", None),
        ('"""See ``docs/lifecycle.md`` and events.md and README.md."""', []),
        ('"""See dev/README.md; ``plugins.md``, wire-schema.md."""', []),
        (f"# https://example.org/{NOWHERE}.md is a URL", []),
        (f"# {NOWHERE}.mdx and {NOWHERE}.markdown are other kinds", []),
    ],
)
def test_missing_names_reports_exactly_the_missing(text: str, expected: list[str] | None) -> None:
    found = [entry.rsplit(": ", 1)[1] for entry in missing_names(Path(__file__), text)]
    if expected is None:
        expected = [f"docs/{NOWHERE}.md", f"../{NOWHERE}.md"]
    assert found == expected


def test_broken_links_reports_missing_files_and_anchors(tmp_path: Path) -> None:
    events = ROOT / "docs" / "events.md"
    assert {"aliecsrun-run-events", "a-transition-x-from-s-to-t"} <= anchors(events)
    assert slug("`aliecs.task` and aliecs.role") == "aliecstask-and-aliecsrole"
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "lifecycle.md").write_text("# Lifecycle\n\n## Calls\n\n```\n# not a heading\n```\n")
    probe, gone = docs / f"probe{MD}", f"{NOWHERE}{MD}"
    probe.write_text(
        f"[a](lifecycle.md#calls) [b]({gone}) [c](lifecycle.md#not-a-heading) [d](#top)\n"
        f"[e](https://example.org/x.md) [f](../docs/lifecycle{MD})\n\n# Top\n",
        encoding="utf-8",
    )
    assert broken_links(probe, tmp_path) == [
        f"docs/probe{MD}: {gone}",
        f"docs/probe{MD}: lifecycle.md#not-a-heading",
    ]
