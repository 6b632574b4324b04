"""The benchmark runs end to end on a tiny workload (no timing is asserted).

``--here`` keeps it to this interpreter's google-adk (no venvs, no network);
SQLite only, so it needs no database server. Figures are not checked: timing
belongs to ``python -m bench``, not to the test suite.
"""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.interpreters
def test_tiny_bench_writes_its_tables(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--tiny",
            "--here",
            "--databases",
            "sqlite",
            "--no-chart",
            "--out",
            str(tmp_path),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]

    results = json.loads((tmp_path / "latest.json").read_text())
    version = metadata.version("google-adk")
    rows = {(c["side"], c["client"]) for c in results["configs"]}
    assert rows == {
        (side, client)
        for side in ("released", "package")
        for client in ("sequential", "eager")
    }
    assert all("error" not in c for c in results["configs"]), results["configs"]
    assert all(c["compaction"]["turns"] == 8 for c in results["configs"])
    assert [o["release"] for o in results["overheads"]] == [version]

    table = (tmp_path / "latest.md").read_text()
    assert "| google-adk | side | database | client | turns failed |" in table
    assert f"| {version} | released | sqlite | eager |" in table
    assert "## Targets" in table
    assert "## Overheads" in table
