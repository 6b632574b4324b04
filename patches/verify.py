#!/usr/bin/env python3
"""Prove the upstream patch series in patches/v*/ against released google-adk.

For every target (a folder ``patches/v<version>/`` holding ``*.patch`` files):

1. download the released sdist of google-adk ``<version>`` with pip and make a
   git repository of it (one commit, "google-adk <version> released sdist");
2. apply the series with ``git am``, one commit per patch; every patch must
   apply exactly (checked first with ``git apply --check --verbose``: no
   offsets, no fuzz, no whitespace fixes);
3. install the tree, editable, into a fresh virtualenv and check the series
   commit by commit: the tests that a patch adds (its new ``test_*``
   functions) fail on the commit before it (pytest exit code 1: test
   failures, not errors of collection) and pass on its own commit, where the
   tests of every earlier patch still pass.

With ``--upstream-tests PATH`` (a google/adk-python checkout, never committed
here) the series' tests may use upstream's test helpers (``testing_utils``,
``conftest.py``, copied in untracked), and for 2.x targets upstream's own
unit tests of the touched areas (UPSTREAM_SUITE) run on the released tree
and on the fully patched one: the before/after counts and every test whose
outcome differs are printed.

Virtualenvs are made with ``uv`` when it is on PATH, else with ``venv`` + pip.
Prints a table and exits non-zero unless every patch holds (and, with
``--upstream-tests``, no upstream test that passes on the release fails on
the patched tree).

Usage: python patches/verify.py [--only v1.18.0] [--keep] [--python PATH]
                                [--jobs N] [--show-failures]
                                [--upstream-tests PATH]
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
import xml.etree.ElementTree as ElementTree
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
# Beside TEST_REQUIREMENTS, for upstream's own unit tests.
UPSTREAM_TEST_REQUIREMENTS = [
    "pytest-mock",
    "pytest-xdist",
    "anyio",
    "hypothesis",
    "python-dateutil",
    "openai",
    "anthropic",
]
# Upstream's unit tests of the areas the 2.x series touches (globs).
UPSTREAM_SUITE = [
    "tests/unittests/test_runners.py",
    "tests/unittests/apps",
    "tests/unittests/sessions",
    "tests/unittests/flows/llm_flows/test_contents*.py",
    "tests/unittests/flows/llm_flows/test_compaction_processor.py",
]
# Upstream's test scaffolding that a series' tests may import.
UPSTREAM_SUPPORT = [
    "tests/__init__.py",
    "tests/unittests/__init__.py",
    "tests/unittests/conftest.py",
    "tests/unittests/testing_utils.py",
]
PYTEST_SUMMARY = re.compile(r"^=* ?(\d+ (passed|failed|error).*?) ?=*$")


@dataclass
class Step:
    """Outcome of one patch of a series."""

    patch: str
    before: str = "-"
    after: str = "-"
    ok: bool = False


@dataclass
class Result:
    """Outcome of verifying one target."""

    target: str
    applies: str = "-"
    steps: List[Step] = field(default_factory=list)
    upstream: str = ""
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


def patch_new_tests(patch: Path) -> List[str]:
    """Returns the pytest node ids of the test functions a patch adds."""
    nodes: List[str] = []
    current: Optional[str] = None
    for line in patch.read_text(encoding="utf-8").splitlines():
        if line.startswith("+++ "):
            match = re.match(r"^\+\+\+ b/(tests/\S+\.py)$", line)
            current = match.group(1) if match else None
            continue
        match = re.match(r"^\+(?:async )?def (test_\w+)\(", line)
        if current and match:
            nodes.append(f"{current}::{match.group(1)}")
    return nodes


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


def head(repo: Path) -> str:
    """Returns the commit checked out in `repo`."""
    return run(["git", "rev-parse", "HEAD"], cwd=repo).stdout.strip()


def apply_series(repo: Path, patches: Sequence[Path]) -> List[str]:
    """Applies the patches with git am; returns the base and each commit."""
    commits = [head(repo)]
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
        commits.append(head(repo))
    return commits


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
    venv_python: Path, cwd: Path, test_files: Sequence[str], *extra: str
) -> Tuple[int, str]:
    """Runs pytest on the test files; returns (exit code, output)."""
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    proc = run(
        [
            str(venv_python),
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-q",
            *extra,
            *test_files,
        ],
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


def existing(repo: Path, nodes: Sequence[str]) -> List[str]:
    """Keeps the node ids whose test function is in the checked-out tree."""
    kept = []
    for node in nodes:
        path, name = node.split("::")
        source = repo / path
        if source.exists() and re.search(
            rf"^(async )?def {name}\(", source.read_text(encoding="utf-8"), re.M
        ):
            kept.append(node)
    return kept


def checkout_code(repo: Path, commit: str, paths: Sequence[str]) -> None:
    """Checks out `paths` of `commit` (the commit holds them, or they go)."""
    for path in paths:
        listed = run(["git", "ls-tree", "--name-only", commit, path], cwd=repo)
        if listed.stdout.strip():
            run(["git", "checkout", "-q", commit, "--", path], cwd=repo)
        elif (repo / path).exists():
            (repo / path).unlink()


def copy_support(upstream: Path, repo: Path, nodes: Sequence[str]) -> None:
    """Copies upstream's test scaffolding into `repo`, untracked."""
    wanted = list(UPSTREAM_SUPPORT)
    for node in nodes:
        folder = Path(node.split("::")[0]).parent
        while str(folder) not in ("tests", "."):
            wanted.append(str(folder / "__init__.py"))
            folder = folder.parent
    for name in wanted:
        source, target = upstream / name, repo / name
        if source.exists() and not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


# Where no upstream checkout is at hand (CI reaches PyPI only), the series'
# tests import this instead of upstream's tests/unittests/testing_utils.py:
# the two helpers they use, with upstream's names and call shapes, written
# here (not copied). With --upstream-tests, upstream's own file is used.
STAND_IN_TESTING_UTILS = """\
\"\"\"Stand-in for upstream's testing_utils (patches/verify.py, untracked).\"\"\"

from google.adk.models.base_llm import BaseLlm
from google.adk.models.llm_response import LlmResponse
from google.genai import types


def UserContent(text):
  return types.Content(role='user', parts=[types.Part(text=text)])


class MockModel(BaseLlm):
  \"\"\"Answers with the given texts in turn and records every request.\"\"\"

  model: str = 'mock'
  responses: list = []
  requests: list = []
  response_index: int = -1

  @classmethod
  def create(cls, responses):
    return cls(responses=list(responses), requests=[])

  async def generate_content_async(self, llm_request, stream=False):
    self.requests.append(llm_request)
    self.response_index += 1
    text = self.responses[self.response_index]
    yield LlmResponse(
        content=types.Content(role='model', parts=[types.Part(text=text)])
    )
"""


def write_stand_in_support(repo: Path, nodes: Sequence[str]) -> None:
    """Writes the stand-in testing_utils and the packages' __init__ files."""
    packages = {"tests", "tests/unittests"}
    for node in nodes:
        folder = Path(node.split("::")[0]).parent
        while str(folder) not in ("tests", "."):
            packages.add(str(folder))
            folder = folder.parent
    for package in packages:
        init = repo / package / "__init__.py"
        if not init.exists():
            init.parent.mkdir(parents=True, exist_ok=True)
            init.write_text("", encoding="utf-8")
    target = repo / "tests" / "unittests" / "testing_utils.py"
    if not target.exists():
        target.write_text(STAND_IN_TESTING_UTILS, encoding="utf-8")


def needs_support(repo: Path, nodes: Sequence[str]) -> bool:
    """Whether the series' tests import upstream's test scaffolding."""
    files = {node.split("::")[0] for node in nodes}
    return any(
        "testing_utils" in (repo / name).read_text(encoding="utf-8")
        for name in files
        if (repo / name).exists()
    )


def verify_steps(
    repo: Path,
    venv_python: Path,
    patches: Sequence[Path],
    commits: Sequence[str],
    result: Result,
    show_failures: bool,
) -> None:
    """Checks the series commit by commit (fails before, passes after)."""
    earlier: List[str] = []
    for index, patch in enumerate(patches, start=1):
        step = Step(patch.name.split("-", 1)[0])
        result.steps.append(step)
        new = patch_new_tests(patch)
        run(["git", "checkout", "-q", commits[index]], cwd=repo)
        if not new:
            result.notes.append(f"{patch.name} adds no test function")
            continue
        code, output = run_tests(venv_python, repo, [*existing(repo, earlier), *new])
        step.after = short(summary_line(output))
        if code != 0:
            result.notes.append(
                f"{patch.name}: tests failed on its own commit (exit {code}):\n"
                + output[-6000:]
            )
        changed = run(
            [
                "git",
                "diff",
                "--name-only",
                commits[index - 1],
                commits[index],
                "--",
                ".",
                ":(exclude)tests",
            ],
            cwd=repo,
        ).stdout.split()
        checkout_code(repo, commits[index - 1], changed)
        try:
            code_before, output_before = run_tests(venv_python, repo, new)
        finally:
            checkout_code(repo, commits[index], changed)
        step.before = short(summary_line(output_before))
        if code_before != 1:
            result.notes.append(
                f"{patch.name}: its tests did not fail with test failures on"
                f" the commit before it (exit {code_before}):\n" + output_before[-6000:]
            )
        elif show_failures:
            failing = [ln for ln in output_before.splitlines() if ln.startswith("E  ")]
            result.notes.append(
                f"{patch.name}: failures on the commit before it:\n"
                + "\n".join(failing[:40])
            )
        step.ok = code == 0 and code_before == 1
        earlier += new


@dataclass(frozen=True)
class Case:
    """One test of a JUnit report: its outcome and the first line of why."""

    outcome: str
    message: str = ""


def _node_id(case: ElementTree.Element) -> str:
    """pytest's node id when the report has file names (junit_family=xunit1)."""
    classname, name = case.get("classname", ""), case.get("name", "")
    file = case.get("file")
    if not file:
        return f"{classname}::{name}"
    module = file[: -len(".py")].replace("/", ".") if file.endswith(".py") else ""
    inner = classname[len(module) + 1 :] if classname.startswith(module + ".") else ""
    return "::".join(part for part in (file, *inner.split("."), name) if part)


def junit_cases(path: Path) -> Dict[str, Case]:
    """Reads a pytest JUnit XML report: test id -> outcome and first message line."""
    cases: Dict[str, Case] = {}
    if not path.exists():
        return cases
    for case in ElementTree.parse(path).getroot().iter("testcase"):
        children = {child.tag: child for child in case}
        outcome = next(
            (
                kind
                for tag, kind in (
                    ("error", "error"),
                    ("failure", "failed"),
                    ("skipped", "skipped"),
                )
                if tag in children
            ),
            "passed",
        )
        detail = children.get({"failed": "failure"}.get(outcome, outcome))
        text = "" if detail is None else detail.get("message") or detail.text or ""
        first = next((line for line in text.splitlines() if line.strip()), "")
        cases[_node_id(case)] = Case(outcome, first.strip())
    return cases


def junit_outcomes(path: Path) -> Dict[str, str]:
    """Reads a pytest JUnit XML report: test id -> passed/failed/error/skipped."""
    return {name: case.outcome for name, case in junit_cases(path).items()}


def count(outcomes: Dict[str, str]) -> str:
    """Summarizes outcomes, e.g. '812 passed, 3 failed'."""
    kinds = ("passed", "failed", "error", "skipped")
    numbers = {k: sum(1 for v in outcomes.values() if v == k) for k in kinds}
    return ", ".join(f"{n} {k}" for k, n in numbers.items() if n)


def run_upstream_suite(
    upstream: Path,
    repo: Path,
    venv_python: Path,
    commits: Sequence[str],
    work: Path,
    result: Result,
) -> bool:
    """Runs upstream's unit tests on the release and on the patched tree."""
    suite_dir = work / "upstream-tests"
    shutil.copytree(upstream / "tests", suite_dir / "tests")
    targets = sorted(
        {
            str(p.relative_to(suite_dir))
            for g in UPSTREAM_SUITE
            for p in suite_dir.glob(g)
        }
    )
    if not targets:
        raise VerifyError(f"no upstream tests of the touched areas under {upstream}")
    runs = {}
    for label, commit in (("released", commits[0]), ("patched", commits[-1])):
        run(["git", "checkout", "-q", commit], cwd=repo)
        report = work / f"upstream-{label}.xml"
        log(f"{result.target}: upstream's unit tests on the {label} tree")
        run_tests(
            venv_python,
            suite_dir,
            targets,
            "-n",
            "2",
            "--continue-on-collection-errors",
            # upstream's [tool.pytest] settings (its pyproject is not copied)
            "-o",
            "asyncio_mode=auto",
            "-o",
            "asyncio_default_fixture_loop_scope=function",
            f"--junitxml={report}",
        )
        runs[label] = junit_outcomes(report)
    before, after = runs["released"], runs["patched"]
    differ = sorted(
        name for name in set(before) | set(after) if before.get(name) != after.get(name)
    )
    both = sorted(
        name
        for name in before
        if before[name] in ("failed", "error") and after.get(name) == before[name]
    )
    result.upstream = f"released: {count(before)} | patched: {count(after)}"
    lines = [f"upstream unit tests ({len(targets)} files): {result.upstream}"]
    lines += [
        f"  differs: {name}: {before.get(name, '-')} -> {after.get(name, '-')}"
        for name in differ
    ]
    lines.append(f"  fail or error on both ({len(both)}):")
    lines += [f"    {name} ({before[name]})" for name in both]
    result.notes.append("\n".join(lines))
    return not any(
        before.get(name) == "passed" and after.get(name) != "passed" for name in differ
    )


def verify_target(
    series_dir: Path,
    work: Path,
    python: Optional[str],
    show_failures: bool,
    upstream: Optional[Path],
) -> Result:
    """Runs all steps for one target and returns its outcome."""
    version = series_dir.name[1:]
    result = Result(series_dir.name)
    patches = series_patches(series_dir)
    try:
        started = time.monotonic()
        log(f"{series_dir.name}: downloading the {PACKAGE} {version} sdist")
        sdist = download_sdist(version, work / "sdist", python)
        repo = make_repo(sdist, work / "src", version)
        try:
            commits = apply_series(repo, patches)
        except VerifyError:
            result.applies = "no"
            raise
        result.applies = f"yes ({len(patches)})"
        interpreter = pick_python(requires_python(repo), python)
        log(f"{series_dir.name}: series applies; testing with {interpreter}")
        all_new = [node for patch in patches for node in patch_new_tests(patch)]
        if not all_new:
            raise VerifyError("the series adds no test under tests/")
        if needs_support(repo, all_new):
            if upstream is None:
                log(
                    f"{series_dir.name}: no --upstream-tests tree; the series'"
                    " tests get a stand-in for testing_utils (MockModel,"
                    " UserContent)"
                )
                write_stand_in_support(repo, all_new)
            else:
                copy_support(upstream, repo, all_new)
        requirements = ["-e", str(repo), *TEST_REQUIREMENTS]
        with_suite = upstream is not None and int(version.split(".")[0]) >= 2
        if with_suite:
            requirements += UPSTREAM_TEST_REQUIREMENTS
        venv_python = make_venv(work / "venv", interpreter, requirements)
        verify_steps(repo, venv_python, patches, commits, result, show_failures)
        result.ok = bool(result.steps) and all(step.ok for step in result.steps)
        if with_suite:
            assert upstream is not None
            if not run_upstream_suite(
                upstream, repo, venv_python, commits, work, result
            ):
                result.ok = False
                result.notes.append(
                    "an upstream test that passes on the release does not pass"
                    " on the patched tree"
                )
        log(f"{series_dir.name}: done in {time.monotonic() - started:.0f}s")
    except VerifyError as e:
        result.notes.append(str(e))
    return result


def print_table(results: Sequence[Result]) -> None:
    """Prints the outcome table: one row per patch."""
    header = ("target", "applies", "patch", "before (new tests)", "after", "ok")
    rows = []
    for r in results:
        if not r.steps:
            rows.append((r.target, r.applies, "-", "-", "-", "NO"))
        for i, step in enumerate(r.steps):
            rows.append(
                (
                    r.target if i == 0 else "",
                    r.applies if i == 0 else "",
                    step.patch,
                    step.before,
                    step.after,
                    "yes" if step.ok else "NO",
                )
            )
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    for row in (header, tuple("-" * w for w in widths), *rows):
        print(" | ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    for r in results:
        if r.upstream:
            print(f"{r.target} upstream unit tests: {r.upstream}")


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
        help="print the failing assertions on the commit before each patch",
    )
    parser.add_argument(
        "--upstream-tests",
        type=Path,
        default=os.environ.get("ADK_UPSTREAM_TESTS") or None,
        metavar="PATH",
        help="a google/adk-python checkout: its test helpers for the series'"
        " tests, and its unit tests of the touched areas, run before and after"
        " (default: $ADK_UPSTREAM_TESTS)",
    )
    args = parser.parse_args(argv)
    if shutil.which("git") is None:
        print("git is required", file=sys.stderr)
        return 2
    upstream = Path(args.upstream_tests).resolve() if args.upstream_tests else None
    if upstream and not (upstream / "tests" / "unittests").is_dir():
        print(f"no tests/unittests under {upstream}", file=sys.stderr)
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
            return verify_target(
                series_dir, work, args.python, args.show_failures, upstream
            )
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
