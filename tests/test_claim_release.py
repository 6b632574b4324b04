"""``tools/claim_release.py`` and the daily workflow that runs it.

The tool is shown at work on a release the table claims (2.13.0), treated as
unknown: in a copy of the table narrowed to end before it, it finds the same
code as family 2.7 and writes back exactly today's table; with one of that
family's fingerprints changed, it lists that function and writes nothing.
Those tests download the wheel from PyPI (skipped when PyPI is unreachable,
except on CI).
"""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import List

import pytest

from adk_compaction_backport import _guards

ROOT = Path(__file__).resolve().parents[1]
TOOL = ROOT / "tools" / "claim_release.py"
TABLE = ROOT / "src" / "adk_compaction_backport" / "_guards.py"
WORKFLOW = ROOT / ".github" / "workflows" / "new-release.yml"
RELEASE = "2.13.0"  # the newest release of family 2.7


def claim(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(TOOL), *args], capture_output=True, text=True, timeout=600
    )


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel cache the tests share (one download of the release)."""
    try:
        urllib.request.urlopen("https://pypi.org/simple/google-adk/", timeout=15)
    except OSError as error:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"PyPI is unreachable: {error}")
    return tmp_path_factory.mktemp("wheels")


def narrowed_copy(tmp_path: Path, edits: List[tuple]) -> Path:
    copy = tmp_path / "_guards.py"
    text = TABLE.read_text(encoding="utf-8")
    for old, new in edits:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    copy.write_text(text, encoding="utf-8")
    return copy


NARROW = ('Releases("2.7.0", "2.14.0")', 'Releases("2.7.0", "2.13.0")')


@pytest.mark.interpreters
def test_a_release_with_a_familys_code_is_claimed_by_one_data_change(
    wheels: Path, tmp_path: Path
) -> None:
    table = narrowed_copy(tmp_path, [NARROW])
    done = claim(RELEASE, "--table", str(table), "--cache", str(wheels))
    assert done.returncode == 0, done.stderr
    assert f"google-adk {RELEASE}: same code as family 2.7: claim it." in done.stdout
    assert table.read_text(encoding="utf-8") == TABLE.read_text(encoding="utf-8")
    # The real table claims it already: checked, and left as it is.
    before = TABLE.read_text(encoding="utf-8")
    done = claim(RELEASE, "--cache", str(wheels))
    assert "is claimed by family 2.7; its code matches" in done.stdout
    done = claim(RELEASE, "--pretend-unclaimed", "--cache", str(wheels))
    assert "same code as family 2.7: claim it." in done.stdout
    assert "Already in the span." in done.stdout
    assert TABLE.read_text(encoding="utf-8") == before


@pytest.mark.interpreters
def test_a_release_whose_code_differs_is_listed_and_nothing_written(
    wheels: Path, tmp_path: Path
) -> None:
    changed = ('"38123b2cc0dc6491": "2.10.0-2.13.0"', '"0123456789abcdef": "2.10.0"')
    table = narrowed_copy(tmp_path, [NARROW, changed])
    before = table.read_text(encoding="utf-8")
    output = tmp_path / "github_output"
    done = claim(
        RELEASE, "--table", str(table), "--cache", str(wheels),
        "--github-output", str(output),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"google-adk {RELEASE}: the code differs from every family's:"
    assert lines[1] == "family 2.7: 1 function(s) differ"
    assert lines[2].startswith("  google.adk.runners.Runner.run: 38123b2cc0dc6491")
    assert table.read_text(encoding="utf-8") == before
    assert output.read_text().splitlines() == ["verdict=differs", f"version={RELEASE}"]


def test_bad_input_says_so_in_one_line_and_changes_nothing(tmp_path: Path) -> None:
    table = narrowed_copy(tmp_path, [])
    done = claim("two.fourteen", "--table", str(table))
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "claim_release: 'two.fourteen' is not a version (e.g. 2.14.0)"
    )
    assert table.read_text(encoding="utf-8") == TABLE.read_text(encoding="utf-8")


def test_the_daily_workflow_runs_the_tool_and_opens_an_issue() -> None:
    yaml = pytest.importorskip("yaml")
    workflow = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    triggers = workflow[True]  # YAML 1.1 reads the key ``on`` as True
    assert triggers["schedule"][0]["cron"].split()[2:] == ["*", "*", "*"]  # daily
    assert workflow["permissions"]["issues"] == "write"
    steps = workflow["jobs"]["check"]["steps"]
    runs = [step.get("run", "") for step in steps]
    command = next(r for r in runs if "tools/claim_release.py" in r)
    assert "--latest" in command and "--github-output" in command
    last = steps[-1]
    assert last["if"] == "steps.claim.outputs.verdict != 'claimed'"
    assert "gh issue create" in last["run"]


def test_the_hook_and_the_tools_read_the_families_table() -> None:
    """A family's functions are named once: in its row of the table."""
    saved = list(sys.path)
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import release_fingerprints
    finally:
        sys.path[:] = saved  # the tool puts ``src`` first too
    targets = {c.target for f in _guards.FAMILIES for c in f.code}
    assert set(release_fingerprints.table_functions()) == targets
