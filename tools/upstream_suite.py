"""Run google-adk's own unit tests with and without this package; print what differs.

The package must be transparent to upstream's tests of the areas it touches
(issue #12): every test there has the same outcome with the package as
without it. This runs them twice against an installed google-adk release:

    python tools/upstream_suite.py TREE --adk VERSION [--python PATH]
                                   [--jobs N] [-k EXPR]

TREE is a google/adk-python checkout (the public repository or a fork that
carries its history; never committed here), ideally at the release commit of
VERSION. Only its ``tests/`` folder is used, copied out, so the tests import
the google-adk installed from PyPI, not the tree's ``src/``. The virtualenv
(google-adk==VERSION, the test dependencies, this package built as a wheel
so its .pth hook is live) is kept under ``.upstream-suite/`` and reused.

Prints the counts each way and every test whose outcome differs; exits 0
when none does, 1 otherwise (2 when the run itself could not be made).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "patches"))

import verify  # patches/verify.py: shared venv, pytest and JUnit helpers

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / ".upstream-suite"
# Upstream's tests of every area the package wraps or relies on.
SUITE = [
    *verify.UPSTREAM_SUITE,
    "tests/unittests/runners",
    "tests/unittests/telemetry",
    "tests/unittests/test_optional_dependencies.py",
]
REQUIREMENTS = [
    *verify.TEST_REQUIREMENTS,
    *verify.UPSTREAM_TEST_REQUIREMENTS,
    # the telemetry tests' (upstream's "test" extra); the pinned google-adk
    # release bounds its OpenTelemetry version
    "opentelemetry-instrumentation-google-genai>=0.3b0,<1",
]
# The upstream tree's [tool.pytest.ini_options] when it cannot be read.
DEFAULT_INI = {"asyncio_mode": "auto", "asyncio_default_fixture_loop_scope": "function"}
MODES = (("without", "1"), ("with", None))
PROBE = """\
import google.adk, google.adk.runners
import adk_compaction_backport as b
s = b.status()
print(google.adk.__file__)
print(f"google-adk {s.adk_version}: family {s.family}, applied {s.applied}, {s.reason}")
"""


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("tree", type=Path, help="a google/adk-python checkout")
    parser.add_argument("--adk", required=True, help="google-adk release to test")
    parser.add_argument("--python", help="interpreter for the virtualenv")
    parser.add_argument("--jobs", type=int, default=2, help="pytest-xdist workers")
    parser.add_argument("-k", dest="keyword", help="pytest -k expression")
    parser.add_argument(
        "--show-both", action="store_true", help="also list tests failing both ways"
    )
    return parser.parse_args(argv)


def tree_python(tree: Path) -> Tuple[int, int]:
    """The minimum Python the tree's pyproject declares."""
    text = (tree / "pyproject.toml").read_text(encoding="utf-8")
    match = re.search(r'requires-python\s*=\s*">=\s*(\d+)\.(\d+)', text)
    return (int(match.group(1)), int(match.group(2))) if match else (3, 9)


def ini_options(tree: Path) -> Dict[str, str]:
    """The tree's pytest settings: its pyproject is not copied with its tests."""
    try:
        import tomllib
    except ImportError:  # Python < 3.11
        return dict(DEFAULT_INI)
    with (tree / "pyproject.toml").open("rb") as f:
        options = tomllib.load(f).get("tool", {}).get("pytest", {})
    options = options.get("ini_options", {})
    return {
        key: " ".join(value) if isinstance(value, list) else str(value)
        for key, value in options.items()
        if key != "testpaths"
    } or dict(DEFAULT_INI)


def venv_for(adk: str, python: str) -> Path:
    """Makes, or reuses when its requirements are unchanged, the suite's venv."""
    major, minor = verify.python_version(python)
    venv = WORK / f"venv-adk{adk}-py{major}{minor}"
    wanted = "\n".join([f"google-adk=={adk}", *REQUIREMENTS])
    marker = venv / "upstream-suite-requirements.txt"
    bin_dir = venv / ("Scripts" if os.name == "nt" else "bin")
    if marker.exists() and marker.read_text(encoding="utf-8") == wanted:
        return bin_dir / ("python.exe" if os.name == "nt" else "python")
    shutil.rmtree(venv, ignore_errors=True)
    verify.log(f"making {venv.name} with {python}")
    venv_python = verify.make_venv(venv, python, wanted.splitlines())
    marker.write_text(wanted, encoding="utf-8")
    return venv_python


def install_package(venv_python: Path) -> None:
    """Builds this repository's wheel and installs it: the .pth hook comes with it."""
    dist = venv_python.parent.parent / "upstream-suite-dist"  # one per venv
    shutil.rmtree(dist, ignore_errors=True)
    uv = shutil.which("uv")
    if uv:
        verify.run(
            [uv, "build", "--quiet", "--wheel", "--out-dir", str(dist), str(REPO)]
        )
    else:
        pip = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps"]
        verify.run([*pip, "-w", str(dist), str(REPO)])
    wheel = str(next(dist.glob("adk_compaction_backport-*.whl")))
    if uv:
        install = [uv, "pip", "install", "--quiet", "--python", str(venv_python)]
        verify.run([*install, "--no-deps", "--reinstall", wheel])
    else:
        pip = [str(venv_python), "-m", "pip", "install", "-q", "--no-deps"]
        verify.run([*pip, "--force-reinstall", wheel])


def stage_tests(tree: Path, run_dir: Path) -> List[str]:
    """Copies the tree's tests out (never its src/); returns the suite's paths."""
    shutil.rmtree(run_dir, ignore_errors=True)
    shutil.copytree(tree / "tests", run_dir / "tests")
    # Stops pytest's rootdir search here: this repository's settings stay out.
    ini = "".join(f"{k} = {v}\n" for k, v in ini_options(tree).items())
    (run_dir / "pytest.ini").write_text(f"[pytest]\n{ini}", encoding="utf-8")
    return sorted({str(p.relative_to(run_dir)) for g in SUITE for p in run_dir.glob(g)})


def mode_env(disable: Optional[str]) -> Dict[str, str]:
    """The environment of one run: the package on, or off by its opt-out."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.pop("ADK_COMPACTION_BACKPORT_DISABLE", None)
    if disable:
        env["ADK_COMPACTION_BACKPORT_DISABLE"] = disable
    return env


def probe(venv_python: Path, run_dir: Path, disable: Optional[str]) -> str:
    """Which google-adk the tests import and what the package did there."""
    proc = verify.run(
        [str(venv_python), "-c", PROBE], cwd=run_dir, env=mode_env(disable)
    )
    origin, state = proc.stdout.strip().splitlines()[-2:]
    if not Path(origin).resolve().is_relative_to(venv_python.parent.parent.resolve()):
        raise verify.VerifyError(f"the tests would import google-adk from {origin}")
    return f"{state}\n  (google.adk from {origin})"


def run_suite(
    venv_python: Path,
    run_dir: Path,
    targets: Sequence[str],
    disable: Optional[str],
    options: argparse.Namespace,
) -> Dict[str, verify.Case]:
    """Runs pytest once; returns the outcome of each test."""
    label = "without" if disable else "with"
    report = run_dir / f"{label}.xml"
    args = [str(venv_python), "-m", "pytest", "-p", "no:cacheprovider", "-q"]
    args += ["-o", "junit_family=xunit1", f"--junitxml={report}"]
    args += ["--continue-on-collection-errors"]
    if options.jobs > 1:
        args += ["-n", str(options.jobs)]
    if options.keyword:
        args += ["-k", options.keyword]
    verify.log(f"pytest {label} the package ({len(targets)} paths)")
    proc = verify.run(
        [*args, *targets], cwd=run_dir, env=mode_env(disable), check=False
    )
    (run_dir / f"{label}.log").write_text(proc.stdout, encoding="utf-8")
    return verify.junit_cases(report)


def report(without: Dict[str, verify.Case], with_: Dict[str, verify.Case]) -> int:
    """Prints counts and differences; returns how many tests differ."""
    missing = verify.Case("-")
    for label, cases in (("without", without), ("with", with_)):
        counts = verify.count({k: c.outcome for k, c in cases.items()})
        print(f"{label} the package: {counts}")
    differ = sorted(
        name
        for name in set(without) | set(with_)
        if without.get(name, missing).outcome != with_.get(name, missing).outcome
    )
    print(f"tests whose outcome differs: {len(differ)}")
    for name in differ:
        before, after = without.get(name, missing), with_.get(name, missing)
        why = after.message or before.message
        print(f"  {name}: {before.outcome} -> {after.outcome}: {why}")
    return len(differ)


def print_both(without: Dict[str, verify.Case], with_: Dict[str, verify.Case]) -> None:
    """Lists the tests that fail or error both ways (upstream's, not ours)."""
    both = sorted(
        name
        for name, case in without.items()
        if case.outcome in ("failed", "error")
        and with_.get(name, verify.Case("-")).outcome == case.outcome
    )
    print(f"failing both ways: {len(both)}")
    for name in both:
        print(f"  {name} ({without[name].outcome}): {without[name].message}")


def main(argv: Optional[Sequence[str]] = None) -> int:
    options = parse_args(argv)
    tree = options.tree.resolve()
    if not (tree / "tests" / "unittests").is_dir():
        print(f"{tree} holds no tests/unittests", file=sys.stderr)
        return 2
    # This machine kind sets PYTHONDONTWRITEBYTECODE; without .pyc files every
    # pytest worker spends seconds importing google-adk.
    os.environ.setdefault("UV_COMPILE_BYTECODE", "1")
    try:
        python = verify.pick_python(tree_python(tree), options.python)
        venv_python = venv_for(options.adk, python)
        install_package(venv_python)
        run_dir = WORK / f"run-{options.adk}-{tree.name}"
        targets = stage_tests(tree, run_dir)
        if not targets:
            raise verify.VerifyError(f"no tests of the touched areas under {tree}")
        print(f"tree {tree}: {len(targets)} paths; reports in {run_dir}")
        for label, disable in MODES:
            print(f"{label} the package: {probe(venv_python, run_dir, disable)}")
        outcomes = [
            run_suite(venv_python, run_dir, targets, disable, options)
            for _, disable in MODES
        ]
    except verify.VerifyError as e:
        print(e, file=sys.stderr)
        return 2
    differ = report(*outcomes)
    if options.show_both:
        print_both(*outcomes)
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
