#!/usr/bin/env python3
"""Prove the upstream patch series in patches/v*/ against released google-adk.

For every target (a folder ``patches/v<version>/`` holding ``*.patch`` files):

1. download the released sdist of google-adk ``<version>`` with pip and make a
   git repository of it (one commit, "google-adk <version> released sdist");
2. apply the series with ``git am``; every patch must apply exactly (checked
   first with ``git apply --check --verbose``: no offsets, no fuzz, no
   whitespace fixes);
3. install the patched tree into a fresh virtualenv and run the test files that
   the series adds: they must pass;
4. install the released wheel of the same version into another virtualenv and
   run the same test files: they must fail (pytest exit code 1, tests ran).

Virtualenvs are made with ``uv`` when it is on PATH, else with ``venv`` + pip.
Prints a table and exits non-zero unless every target holds.

Usage: python patches/verify.py [--only v1.18.0] [--keep] [--python PATH]
                                [--jobs N] [--show-failures]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

PATCHES_DIR = Path(__file__).resolve().parent
PACKAGE = "google-adk"
# Installed beside google-adk for the series' tests: the runner and test
# plugins, SQLAlchemy (an extra from google-adk 2.x on) with its asyncio
# support, and the SQLite driver of the async engine (google-adk 1.19+).
TEST_REQUIREMENTS = [
    "pytest",
    "pytest-asyncio",
    "sqlalchemy[asyncio]>=2,<3",
    "aiosqlite",
    "greenlet",
]
GIT_IDENTITY = [
    "-c",
    "user.name=adk patch verifier",
    "-c",
    "user.email=adk-patch-verifier@localhost",
    "-c",
    "commit.gpgsign=false",
]
PYTEST_SUMMARY = re.compile(r"^=* ?(\d+ (passed|failed|error).*?) ?=*$")


@dataclass
class Result:
    """Outcome of verifying one target."""

    target: str
    applies: str = "-"
    patched: str = "-"
    unpatched: str = "-"
    ok: bool = False
    notes: List[str] = field(default_factory=list)


class VerifyError(Exception):
    """A step failed; the message says which and why."""


def log(message: str) -> None:
    """Prints a progress line to stderr."""
    print(f"[{Path(sys.argv[0]).stem}] {message}", file=sys.stderr, flush=True)


def run(
    args: Sequence[str],
    cwd: Optional[Path] = None,
    env: Optional[Dict[str, str]] = None,
    check: bool = True,
) -> subprocess.CompletedProcess:
    """Runs a command, capturing its combined output."""
    proc = subprocess.run(  # the exit code is checked below
        list(args),
        check=False,
        cwd=str(cwd) if cwd else None,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    if check and proc.returncode != 0:
        raise VerifyError(
            f"command failed ({proc.returncode}): {' '.join(args)}\n"
            + proc.stdout[-4000:]
        )
    return proc


def discover_targets(only: Optional[str]) -> List[Path]:
    """Returns the series folders (patches/v*/ with *.patch files)."""
    targets = sorted(
        (d for d in PATCHES_DIR.glob("v*") if d.is_dir() and any(d.glob("*.patch"))),
        key=lambda d: [int(x) if x.isdigit() else x for x in d.name[1:].split(".")],
    )
    if only:
        wanted = only if only.startswith("v") else f"v{only}"
        targets = [d for d in targets if d.name == wanted]
        if not targets:
            raise VerifyError(f"no series folder patches/{wanted}/")
    return targets


def series_patches(series_dir: Path) -> List[Path]:
    """Returns the patches of a series in order."""
    return sorted(series_dir.glob("*.patch"))


def series_test_files(patches: Sequence[Path]) -> List[str]:
    """Returns the test files that the series adds or changes."""
    files: List[str] = []
    for patch in patches:
        for line in patch.read_text(encoding="utf-8").splitlines():
            match = re.match(r"^\+\+\+ b/(tests/\S+\.py)$", line)
            if match and match.group(1) not in files:
                files.append(match.group(1))
    return files


def pip_python(preferred: Optional[str] = None) -> str:
    """Returns an interpreter that has pip (a uv-made venv may have none)."""
    base = getattr(sys, "_base_executable", None)
    for python in (preferred, sys.executable, base, *candidate_pythons()):
        if (
            python
            and run([python, "-m", "pip", "--version"], check=False).returncode == 0
        ):
            return python
    raise VerifyError("no Python with pip found; install pip or pass --python")


def download_sdist(version: str, dest: Path, python: Optional[str] = None) -> Path:
    """Downloads the released sdist of google-adk with pip."""
    dest.mkdir(parents=True, exist_ok=True)
    run(
        [
            pip_python(python),
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--no-binary",
            ":all:",
            f"{PACKAGE}=={version}",
            "-d",
            str(dest),
        ]
    )
    sdists = sorted(dest.glob("*.tar.gz"))
    if len(sdists) != 1:
        raise VerifyError(f"expected one sdist in {dest}, found {sdists}")
    return sdists[0]


def _safe_extract(archive: tarfile.TarFile, dest: Path) -> None:
    """Extracts an archive, refusing members that leave `dest` or are links."""
    root = dest.resolve()
    for member in archive.getmembers():
        target = (dest / member.name).resolve()
        if root not in (target, *target.parents) or member.issym() or member.islnk():
            raise VerifyError(f"unsafe member in sdist: {member.name}")
    archive.extractall(dest)  # members checked above


def make_repo(sdist: Path, dest: Path, version: str) -> Path:
    """Unpacks the sdist into `dest` and commits it as the base of the series."""
    unpack = dest.parent / f"{dest.name}-unpack"
    with tarfile.open(sdist) as archive:
        _safe_extract(archive, unpack)
    (top,) = [p for p in unpack.iterdir() if p.is_dir()]
    shutil.move(str(top), str(dest))
    shutil.rmtree(unpack)
    run(["git", "init", "-q", "."], cwd=dest)
    run(["git", "add", "-A"], cwd=dest)
    run(
        [
            "git",
            *GIT_IDENTITY,
            "commit",
            "-q",
            "--no-verify",
            "-m",
            f"{PACKAGE} {version} released sdist",
        ],
        cwd=dest,
    )
    return dest


def apply_series(repo: Path, patches: Sequence[Path]) -> None:
    """Applies the patches with git am; each must apply exactly."""
    for patch in patches:
        check = run(
            ["git", "apply", "--check", "--verbose", str(patch)], cwd=repo, check=False
        )
        inexact = [
            line
            for line in check.stdout.splitlines()
            if line.startswith(("warning", "error"))
            or re.match(r"Hunk #\d+ .*(offset|fuzz)", line)
        ]
        if check.returncode != 0 or inexact:
            raise VerifyError(f"{patch.name} does not apply exactly:\n{check.stdout}")
        am = run(
            ["git", *GIT_IDENTITY, "am", "--quiet", str(patch)], cwd=repo, check=False
        )
        if am.returncode != 0 or am.stdout.strip():
            run(["git", "am", "--abort"], cwd=repo, check=False)
            raise VerifyError(f"git am {patch.name} failed:\n{am.stdout}")


def python_version(python: str) -> Tuple[int, int]:
    """Returns the (major, minor) version of an interpreter."""
    out = run(
        [python, "-c", "import sys; print(sys.version_info[0], sys.version_info[1])"]
    )
    major, minor = out.stdout.split()
    return int(major), int(minor)


def requires_python(tree: Path) -> Tuple[int, int]:
    """Returns the minimum Python version declared in the sdist's PKG-INFO."""
    text = (tree / "PKG-INFO").read_text(encoding="utf-8")
    match = re.search(r"^Requires-Python:\s*>=\s*(\d+)\.(\d+)", text, re.MULTILINE)
    return (int(match.group(1)), int(match.group(2))) if match else (3, 9)


def candidate_pythons() -> List[str]:
    """Interpreters to try: this one, versioned ones on PATH, pyenv's."""
    found = [sys.executable]
    for minor in range(14, 8, -1):
        path = shutil.which(f"python3.{minor}")
        if path:
            found.append(path)
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    found += [
        str(p) for p in sorted(pyenv_root.glob("versions/3.*/bin/python"), reverse=True)
    ]
    return found


def pick_python(minimum: Tuple[int, int], explicit: Optional[str]) -> str:
    """Returns an interpreter that satisfies `minimum` (or the explicit one)."""
    if explicit:
        return explicit
    for python in candidate_pythons():
        try:
            if python_version(python) >= minimum:
                return python
        except (OSError, VerifyError):
            continue
    raise VerifyError(f"no Python >= {minimum[0]}.{minimum[1]} found; pass --python")


def make_venv(venv: Path, python: str, requirements: Sequence[str]) -> Path:
    """Creates a virtualenv with `requirements`; returns its interpreter."""
    bin_dir = "Scripts" if os.name == "nt" else "bin"
    venv_python = venv / bin_dir / ("python.exe" if os.name == "nt" else "python")
    uv = shutil.which("uv")
    if uv:
        run([uv, "venv", "--quiet", "--python", python, str(venv)])
        run(
            [
                uv,
                "pip",
                "install",
                "--quiet",
                "--python",
                str(venv_python),
                *requirements,
            ]
        )
    else:
        run([python, "-m", "venv", str(venv)])
        run(
            [
                str(venv_python),
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                *requirements,
            ]
        )
    return venv_python


def run_tests(
    venv_python: Path, cwd: Path, test_files: Sequence[str]
) -> Tuple[int, str]:
    """Runs pytest on the test files; returns (exit code, output)."""
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    proc = run(
        [str(venv_python), "-m", "pytest", "-p", "no:cacheprovider", "-q", *test_files],
        cwd=cwd,
        env=env,
        check=False,
    )
    return proc.returncode, proc.stdout


def summary_line(output: str) -> str:
    """Returns pytest's closing summary, e.g. '6 passed in 9.1s'."""
    for line in reversed(output.splitlines()):
        match = PYTEST_SUMMARY.match(line.strip())
        if match:
            return match.group(1)
    return "no summary"


def short(summary: str) -> str:
    """Drops warnings and timing from a pytest summary for the table."""
    parts = [p.strip() for p in summary.split(" in ", 1)[0].split(",")]
    return ", ".join(p for p in parts if "warning" not in p)


def verify_target(
    series_dir: Path, work: Path, python: Optional[str], show_failures: bool
) -> Result:
    """Runs all steps for one target and returns its outcome."""
    version = series_dir.name[1:]
    result = Result(series_dir.name)
    patches = series_patches(series_dir)
    test_files = series_test_files(patches)
    try:
        started = time.monotonic()
        log(f"{series_dir.name}: downloading the {PACKAGE} {version} sdist")
        sdist = download_sdist(version, work / "sdist", python)
        repo = make_repo(sdist, work / "src", version)
        try:
            apply_series(repo, patches)
        except VerifyError:
            result.applies = "no"
            raise
        result.applies = f"yes ({len(patches)})"
        interpreter = pick_python(requires_python(repo), python)
        log(f"{series_dir.name}: series applies; testing with {interpreter}")
        if not test_files:
            raise VerifyError("the series adds no test file under tests/")

        patched_python = make_venv(
            work / "venv-patched", interpreter, [str(repo), *TEST_REQUIREMENTS]
        )
        code, output = run_tests(patched_python, repo, test_files)
        result.patched = short(summary_line(output))
        if code != 0:
            result.notes.append(
                f"patched tests failed (exit {code}):\n{output[-6000:]}"
            )

        # The same test files, against the released wheel, outside the tree.
        tests_copy = work / "tests-unpatched"
        for name in test_files:
            (tests_copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(repo / name, tests_copy / name)
        released_python = make_venv(
            work / "venv-released",
            interpreter,
            ["--only-binary", PACKAGE, f"{PACKAGE}=={version}", *TEST_REQUIREMENTS],
        )
        code_released, output_released = run_tests(
            released_python, tests_copy, test_files
        )
        result.unpatched = short(summary_line(output_released))
        if code_released != 1:
            result.notes.append(
                "the released version did not fail its tests with failures"
                f" (exit {code_released}):\n{output_released[-6000:]}"
            )
        elif show_failures:
            failing = [
                ln for ln in output_released.splitlines() if ln.startswith("E  ")
            ]
            result.notes.append(
                "failures on the released version:\n" + "\n".join(failing[:40])
            )
        result.ok = code == 0 and code_released == 1
        log(f"{series_dir.name}: done in {time.monotonic() - started:.0f}s")
    except VerifyError as e:
        result.notes.append(str(e))
    return result


def print_table(results: Sequence[Result]) -> None:
    """Prints the outcome table."""
    header = ("target", "applies", "patched tests", "unpatched tests", "ok")
    rows = [
        (r.target, r.applies, r.patched, r.unpatched, "yes" if r.ok else "NO")
        for r in results
    ]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    for row in (header, tuple("-" * w for w in widths), *rows):
        print(" | ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Verifies every target; returns the process exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="verify one target, e.g. v1.18.0")
    parser.add_argument("--keep", action="store_true", help="keep the temp dirs")
    parser.add_argument("--python", help="interpreter for the test virtualenvs")
    parser.add_argument(
        "--jobs", type=int, default=2, help="targets verified in parallel (2)"
    )
    parser.add_argument(
        "--show-failures",
        action="store_true",
        help="print the failing assertions of the released version",
    )
    args = parser.parse_args(argv)
    if shutil.which("git") is None:
        print("git is required", file=sys.stderr)
        return 2
    try:
        targets = discover_targets(args.only)
    except VerifyError as e:
        print(e, file=sys.stderr)
        return 2
    if not targets:
        print("no patch series found under patches/v*/", file=sys.stderr)
        return 2

    def verify(series_dir: Path) -> Result:
        work = Path(tempfile.mkdtemp(prefix=f"adk-verify-{series_dir.name}-"))
        try:
            return verify_target(series_dir, work, args.python, args.show_failures)
        finally:
            if args.keep:
                log(f"{series_dir.name}: kept {work}")
            else:
                shutil.rmtree(work, ignore_errors=True)

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        results = list(pool.map(verify, targets))
    for result in results:
        for note in result.notes:
            print(f"--- {result.target}: {note}\n")
    print_table(results)
    print(f"\n{len(results)} target(s) in {time.monotonic() - started:.0f}s")
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
