"""The start-up line is short, stdlib-only, guarded, and quoted in the docs."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PTH = REPO / "src" / "adk_compaction_backport.pth"


def test_the_pth_file_is_one_import_line():
    lines = PTH.read_text().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("import ")  # site.py executes only such lines
    assert "ADK_COMPACTION_BACKPORT_DISABLE" in lines[0]
    # A .pth left behind by an uninstall: the import fails quietly.
    assert "try:" in lines[0] and "except Exception: pass" in lines[0]
    assert "import _adk_compaction_backport_hook" in lines[0]


def test_the_docs_quote_the_line_and_name_every_watched_module():
    import _adk_compaction_backport_hook as hook

    internals = (REPO / "docs" / "internals.md").read_text()
    assert PTH.read_text().strip() in internals
    named = " ".join(internals.split())  # module lists wrap across lines
    modules, _callback = hook.START_UP
    count = {4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight"}[len(modules)]
    assert f"for the {count} google-adk modules" in named
    for module in modules:
        assert f"`{module}`" in named


def test_the_start_file_names_the_same_entry_point():
    start = (REPO / "src" / "adk_compaction_backport.start").read_text().split()
    assert start == ["_adk_compaction_backport_hook:install"]
