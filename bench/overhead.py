"""Start-up and import cost of the package: two interpreters, alternated.

Each round runs the same command once with the package and once without (the
order flips every round, so drift and caches hit both sides alike) and keeps
the ratio of the two wall times; the median ratio is the answer.

``python -m bench.overhead --site-main`` measures the ``.pth`` hook alone:
``site.main()`` timed inside ``python -S`` children of three venvs that differ
only in site-packages (nothing; a ``.pth`` holding only ``import os``, the
floor of any executable line; the package's ``.pth`` and hook module), per
Python, against the target of the floor + 0.3 ms (issue #22).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from bench.plan import REPO
from bench.stats import cpu_and_wall, percentile
from bench.targets import HOOK_OVER_FLOOR_LIMIT_S

OPT_OUT = "ADK_COMPACTION_BACKPORT_DISABLE"
STARTUP = ("-c", "pass")
# What issue #12 measures: the runner is what apps import.
IMPORT = ("-c", "import google.adk.runners")


def _env(disabled: bool) -> Dict[str, str]:
    env = dict(os.environ)
    env.pop(OPT_OUT, None)
    env["PYTHONWARNINGS"] = "ignore"
    if disabled:
        env[OPT_OUT] = "1"
    return env


def _timed(
    python: Path, args: Sequence[str], env: Dict[str, str]
) -> Tuple[float, float]:
    """(CPU seconds, wall seconds) of one child interpreter.

    CPU time (user + sys) is what the comparison uses: other work on a small
    machine disturbs it much less than wall time.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(
        [str(python), *args],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall


def alternate(
    with_python: Path,
    without_python: Path,
    args: Sequence[str],
    rounds: int,
    without_disabled: bool = False,
) -> Optional[Dict[str, Any]]:
    """Ratio of CPU times (and of wall times), with / without; ``None`` for none.

    ``without_disabled``: the "without" side is the same interpreter with the
    package's opt-out set (``--here``: there is no second environment).
    """
    if rounds <= 0:
        return None
    sides = [
        (True, with_python, _env(False)),
        (False, without_python, _env(without_disabled)),
    ]
    for _, python, env in sides:  # warm-up: the file cache, for both
        _timed(python, args, env)
    cpu: Dict[bool, List[float]] = {True: [], False: []}
    wall: Dict[bool, List[float]] = {True: [], False: []}
    for n in range(rounds):
        for has_package, python, env in sides if n % 2 == 0 else sides[::-1]:
            used, took = _timed(python, args, env)
            cpu[has_package].append(used)
            wall[has_package].append(took)
    return cpu_and_wall((cpu[True], cpu[False]), (wall[True], wall[False]))


# A child times site.main() in CPU ns. It drops sys.path[0] (the -c folder)
# first: a real start runs site before that folder is on the path.
SITE_MAIN = (
    "import sys, time, site\n"
    "del sys.path[0]\n"
    "started = time.process_time_ns()\n"
    "site.main()\n"
    "print(time.process_time_ns() - started)"
)
HOOK_FILES = ("adk_compaction_backport.pth", "_adk_compaction_backport_hook.py")
FLOOR_PTH = "import os\n"  # the floor of any executable .pth line


def _site_sides() -> Dict[str, Dict[str, str]]:
    """What each side's site-packages holds: file name -> text."""
    package = {name: (REPO / "src" / name).read_text() for name in HOOK_FILES}
    return {"none": {}, "floor": {"floor.pth": FLOOR_PTH}, "package": package}


def site_venvs(python: str, root: Path) -> Dict[str, Path]:
    """One venv per side of ``_site_sides()``, compiled as installers do.

    pip, and uv with ``UV_COMPILE_BYTECODE`` (tox, the bench), write the
    ``.pyc`` at install; compiling with the venv's own Python does the same.
    """
    pythons = {}
    for side, files in _site_sides().items():
        venv = root / side
        subprocess.run(
            [
                "uv",
                "venv",
                "-q",
                "--no-python-downloads",
                "--python",
                python,
                str(venv),
            ],
            check=True,
        )
        site_packages = next(venv.glob("lib/python3.*/site-packages"))
        for name, text in files.items():
            (site_packages / name).write_text(text)
        child = venv / "bin" / "python"
        compile_all = [str(child), "-m", "compileall", "-q", str(site_packages)]
        subprocess.run(compile_all, check=True)
        pythons[side] = child
    return pythons


def _site_main_ms(python: Path) -> float:
    env = dict(os.environ)
    env.pop(OPT_OUT, None)
    run = subprocess.run(
        [str(python), "-S", "-c", SITE_MAIN],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return int(run.stdout) / 1e6


def _spread(values: List[float]) -> Dict[str, Optional[float]]:
    return {
        q: percentile(values, n) for q, n in (("p25", 25), ("median", 50), ("p75", 75))
    }


def site_main(python: str, rounds: int) -> Dict[str, Any]:
    """site.main() CPU ms per side and the paired differences, one round each.

    Every round runs each side once, in an order that rotates and flips, so
    drift on a shared machine hits all sides alike; the answer is the median
    of the per-round differences (package - floor, package - none).
    """
    root = Path(tempfile.mkdtemp(prefix="bench-site-main-"))
    try:
        pythons = site_venvs(python, root)
        sides = list(pythons)
        for side in sides:  # warm-up: the file cache
            _site_main_ms(pythons[side])
        times: Dict[str, List[float]] = {side: [] for side in sides}
        for n in range(rounds):
            order = sides[n % len(sides) :] + sides[: n % len(sides)]
            for side in order[::-1] if n % 2 else order:
                times[side].append(_site_main_ms(pythons[side]))
    finally:
        shutil.rmtree(root, ignore_errors=True)

    def over(base: str) -> List[float]:
        return [a - b for a, b in zip(times["package"], times[base])]

    over_floor = _spread(over("floor"))
    return {
        "python": python,
        "rounds": rounds,
        "site_main_ms": {side: _spread(values) for side, values in times.items()},
        "package_minus_floor_ms": over_floor,
        "package_minus_none_ms": _spread(over("none")),
        "floor_minus_none_ms": _spread(
            [f - b for f, b in zip(times["floor"], times["none"])]
        ),
        "target_ms": HOOK_OVER_FLOOR_LIMIT_S * 1000,
        "met": (over_floor["median"] or 0) <= HOOK_OVER_FLOOR_LIMIT_S * 1000,
    }


def site_main_line(item: Dict[str, Any]) -> str:
    """One Python's figures, the floor beside the package's."""

    def ms(spread: Dict[str, Optional[float]]) -> str:
        low, mid, high = spread["p25"], spread["median"], spread["p75"]
        return f"{mid:+.3f} ms (IQR {low:+.3f} .. {high:+.3f})"

    verdict = "met" if item["met"] else "**MISS**"
    return (
        f"{item['python']}: site.main() {item['site_main_ms']['none']['median']:.3f} ms"
        f" with no .pth; floor (`import os`) {ms(item['floor_minus_none_ms'])};"
        f" package {ms(item['package_minus_none_ms'])}; package - floor"
        f" {ms(item['package_minus_floor_ms'])}, target <= +{item['target_ms']:.1f} ms:"
        f" {verdict} ({item['rounds']} rounds)"
    )


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.overhead")
    parser.add_argument("--site-main", action="store_true", required=True)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument(
        "--python", action="append", help="interpreters (default: 3.11 and 3.13)"
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    load = os.getloadavg()[0]
    items = []
    for python in args.python or ["3.11", "3.13"]:
        items.append(site_main(python, args.rounds))
        print(site_main_line(items[-1]), flush=True)
    print(f"load average {load:.1f} before, {os.getloadavg()[0]:.1f} after")
    if args.json:
        args.json.write_text(json.dumps(items, indent=1))
    return 0 if all(item["met"] for item in items) else 1


if __name__ == "__main__":
    sys.exit(main())
