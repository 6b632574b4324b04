"""The commands a user runs: ``doctor`` and ``verify``, in fresh interpreters."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from adk_compaction_backport._activation import installed_adk_version
from adk_compaction_backport._guards import family_for

CLAIMED = family_for(installed_adk_version()) is not None


def run_module(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("ADK_COMPACTION_BACKPORT_DISABLE", None)
    return subprocess.run(
        [sys.executable, "-m", "adk_compaction_backport", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def test_doctor_says_what_status_says():
    done = run_module("doctor")
    assert done.returncode == 0, done.stderr
    assert f"google-adk installed: {installed_adk_version()}" in done.stdout
    assert ("fix applied:          yes" in done.stdout) == CLAIMED


@pytest.mark.skipif(not CLAIMED, reason="nothing to verify on an unclaimed release")
def test_verify_shows_the_race_and_the_fix(tmp_path):
    done = run_module(
        "verify",
        "--client",
        "eager",
        "--sessions",
        "2",
        "--turns",
        "4",
        "--summarizer-delay",
        "0.2",
        "--reply-delay",
        "0.05",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    table = dict(
        (line[:32].strip(), line[32:].split())
        for line in done.stdout.splitlines()
        if line.startswith("  ") and len(line[32:].split()) == 2
    )
    assert table["summaries expected"] == ["4", "4"]
    assert table["summaries stored"][1] == "4"
    assert table["turns failed"][1] == "0"
    assert "every summary stored once" in done.stdout


@pytest.mark.skipif(CLAIMED, reason="only an unclaimed release has nothing to verify")
def test_verify_says_so_when_the_fix_does_not_apply():
    done = run_module("verify", "--client", "eager", "--sessions", "1", "--turns", "2")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "nothing was verified" in done.stdout
