"""Every ``race`` test fails on the same google-adk with the fix turned off.

The race tests run again in a fresh interpreter with
``ADK_COMPACTION_BACKPORT_DISABLE=1``; each must fail there, or it proves
nothing about the fix.
"""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

from adk_compaction_backport._activation import installed_adk_version
from adk_compaction_backport._guards import family_for
from harness import OTHER_FAMILY, fix_under_test

HERE = Path(__file__).parent


@pytest.mark.skipif(
    family_for(installed_adk_version()) is None or fix_under_test() != "backport",
    reason="proves the backport; patches/verify.py proves the upstream series",
)
def test_each_race_test_fails_without_the_fix(tmp_path):
    report = tmp_path / "unpatched.xml"
    env = dict(os.environ, ADK_COMPACTION_BACKPORT_DISABLE="1")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-m",
            "race",
            "-p",
            "no:cacheprovider",
            "-q",
            "-W",
            "ignore",
            # Tracebacks by line: an unpatched failure deep in a recursion once
            # crashed pytest's own source formatting (CPython 3.11's ast).
            "--tb=line",
            f"--junitxml={report}",
            str(HERE),
        ],
        env=env,
        cwd=HERE.parent,
        capture_output=True,
        check=False,
    )
    cases = ElementTree.parse(report).getroot().iter("testcase")
    outcomes = {
        f"{case.get('classname')}::{case.get('name')}": [child.tag for child in case]
        for case in cases
        if not any(
            child.tag == "skipped" and OTHER_FAMILY in (child.get("message") or "")
            for child in case
        )
    }
    assert outcomes, "no race test ran without the fix"
    passed = [name for name, tags in outcomes.items() if not tags]
    assert not passed, f"these race tests pass without the fix: {passed}"
    skipped = [name for name, tags in outcomes.items() if "skipped" in tags]
    assert not skipped, f"these race tests were skipped without the fix: {skipped}"
