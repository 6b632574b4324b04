"""Installing the package never changes an installed version (issue #21).

An earlier ``google-adk>=1.16`` dependency turned ``pip install`` on 1.15.0
into an upgrade to the newest 2.x. Here the built wheel goes into fresh
virtualenvs holding a release the package does not claim (1.15.0: before
compaction existed; 2.1.0: no compaction after an invocation), and
``uv pip freeze`` must read the same afterwards, plus the package itself.
There, and where google-adk is missing, the package is a quiet no-op, and
``doctor`` says why.

The wheel comes from ``tox -e package`` (``ADK_BACKPORT_DIST_DIR``), the one
CI builds, checks and would publish.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import List, Sequence

import pytest

pytestmark = pytest.mark.interpreters

UNCLAIMED_RELEASES = ("1.15.0", "2.1.0")


def uv(*args: object) -> str:
    """Run uv (a dependency of the package env); fail with what it said."""
    done = subprocess.run(
        [sys.executable, "-m", "uv", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, f"uv {args}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def freeze(venv: Path) -> List[str]:
    return uv("pip", "freeze", "--python", venv).splitlines()


def run_python(venv: Path, args: Sequence[str]) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.pop("ADK_COMPACTION_BACKPORT_DISABLE", None)
    return subprocess.run(
        [str(venv / "bin" / "python"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


@pytest.fixture(scope="module")
def wheel() -> Path:
    dist_dir = os.environ.get("ADK_BACKPORT_DIST_DIR")
    if not dist_dir:
        pytest.skip("needs the built distributions: tox -e package")
    (built,) = Path(dist_dir).glob("adk_compaction_backport-*.whl")
    return built


@pytest.mark.parametrize("release", UNCLAIMED_RELEASES)
def test_installing_changes_no_version(release: str, wheel: Path, tmp_path: Path):
    venv = tmp_path / "venv"
    uv("venv", "-q", "--python", sys.executable, venv)
    uv("pip", "install", "-q", "--python", venv, f"google-adk=={release}")
    before = freeze(venv)

    uv("pip", "install", "-q", "--python", venv, wheel)  # as a user would: deps on

    after = freeze(venv)
    added = sorted(set(after) - set(before))
    assert sorted(set(before) - set(after)) == [], "a version moved"
    assert [line.split(" @ ")[0] for line in added] == ["adk-compaction-backport"]

    # A quiet no-op: importing google-adk prints what it printed before...
    imported = run_python(venv, ["-c", "import google.adk.runners"])
    assert imported.returncode == 0, imported.stderr
    assert "compaction_backport" not in imported.stderr + imported.stdout
    # ...and doctor says why nothing was patched.
    doctor = run_python(venv, ["-m", "adk_compaction_backport", "doctor"])
    assert doctor.returncode == 0, doctor.stderr
    assert f"google-adk {release} is not a release this package claims" in (
        doctor.stdout
    )


def test_without_google_adk_it_does_nothing_and_says_so(wheel: Path, tmp_path: Path):
    venv = tmp_path / "venv"
    uv("venv", "-q", "--python", sys.executable, venv)
    before = freeze(venv)

    uv("pip", "install", "-q", "--python", venv, wheel)

    after = freeze(venv)
    assert sorted(set(before) - set(after)) == []
    assert not any(line.startswith("google-adk") for line in after)
    doctor = run_python(venv, ["-m", "adk_compaction_backport", "doctor"])
    assert doctor.returncode == 0, doctor.stderr
    assert "google-adk is not installed; the package does nothing" in doctor.stdout
