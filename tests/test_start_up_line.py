"""The start-up line is short, stdlib-only, guarded, and quoted in the README."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PTH = REPO / "src" / "adk_compaction_backport.pth"


def test_the_pth_file_is_one_import_line():
    lines = PTH.read_text().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("import ")  # site.py executes only such lines
    assert "ADK_COMPACTION_BACKPORT_DISABLE" in lines[0]
    assert 'find_spec("adk_compaction_backport")' in lines[0]  # leftover file: no-op


def test_the_readme_quotes_the_line_exactly():
    assert PTH.read_text().strip() in (REPO / "README.md").read_text()


def test_the_start_file_names_the_same_entry_point():
    start = (REPO / "src" / "adk_compaction_backport.start").read_text().split()
    assert start == ["adk_compaction_backport._bootstrap:install"]
