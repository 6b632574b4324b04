"""Start-up and import cost of the package: two interpreters, alternated.

Each round runs the same command once with the package and once without (the
order flips every round, so drift and caches hit both sides alike) and keeps
the ratio of the two wall times; the median ratio is the answer.
"""

from __future__ import annotations

import os
import resource
import subprocess
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from bench.stats import cpu_and_wall

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
