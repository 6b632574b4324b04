"""``--first-turn-only``: the first turns of fresh servers, per release and service.

Runs ``bench.first_turn`` in each release's bench venv and renders one row per
(release, session service): the first turn's median with the package and
released, checked against the latency target (issue #12: the first turn of a
process included), and the later turns' medians for scale.
"""

from __future__ import annotations

import sys
from typing import Any, Dict, List, Optional

from bench.first_turn import SIDES
from bench.plan import Plan
from bench.report import run_line
from bench.runner import package_pythons, run_module
from bench.stats import percentile
from bench.targets import LATENCY_SHARE, Check

# ``sqlite://`` means SqliteSessionService to ``adk api_server`` from 1.19.
SQLITE_SERVICE_FROM = (1, 19)
SERVICE_LABELS = {
    "database": "DatabaseSessionService (SQLite)",
    "sqlite_service": "SqliteSessionService",
}
TURNS = 3


def _kinds(release: str) -> List[str]:
    version = tuple(int(part) for part in release.split(".")[:2])
    kinds = ["database"]
    if version >= SQLITE_SERVICE_FROM:
        kinds.append("sqlite_service")
    return kinds


def run(plan: Plan, rounds: int) -> List[Dict[str, Any]]:
    """One row per (release, session service), or one with an ``error``."""
    rows: List[Dict[str, Any]] = []
    for release, python in package_pythons(plan):
        spec = {
            "workload": plan.workload.as_dict(),
            "rounds": rounds,
            "turns": TURNS,
            "kinds": _kinds(release),
        }
        done, output, took = run_module(python, "bench.first_turn", spec, "package")
        print(f"bench: google-adk {release} first turns: {took:.0f} s", file=sys.stderr)
        if done.returncode != 0 or output is None:
            print("\n".join(done.stderr.splitlines()[-40:]), file=sys.stderr)
            rows.append({"release": release, "error": f"exit {done.returncode}"})
            continue
        for kind, sides in output["runs"].items():
            rows.append({"release": release, "kind": kind, "runs": sides})
    return rows


def _median(values: List[float]) -> Optional[float]:
    return percentile(values, 50)


def check(row: Dict[str, Any], summarizer_delay: float) -> Check:
    """The package's first-turn median within 5% of the summarizer latency of
    released google-adk's."""
    runs = row["runs"]
    ours = _median([turns[0] for turns in runs["package"]])
    theirs = _median([turns[0] for turns in runs["released"]])
    if ours is None or theirs is None:
        return Check(None, "not measured")
    limit = LATENCY_SHARE * summarizer_delay * 1000
    difference = ours - theirs
    return Check(difference <= limit, f"{difference:+.0f} ms, limit {limit:.0f}")


def body(results: Dict[str, Any]) -> str:
    """The run's facts and one row per (release, session service)."""
    meta, rows = results["meta"], results["first_turn"]
    rounds = meta["first_turn_rounds"]
    summarizer_delay = meta["workload"]["summarizer_delay"]
    lines = [
        run_line(meta),
        "",
        f"A fresh `adk api_server` per round and side ({rounds} rounds, sides "
        "alternating; released: the same venv with "
        "`ADK_COMPACTION_BACKPORT_DISABLE=1`), no warm-up, one session of "
        f"{TURNS} turns read sequentially, compaction every "
        f"{meta['workload']['interval']} invocations, fake model reply "
        f"{meta['workload']['reply_delay'] * 1000:.0f} ms, fake summarizer "
        f"{summarizer_delay * 1000:.0f} ms; medians in ms.",
        "",
        "| google-adk | session service | first turn, + package / released | "
        "first turn <= released + 5% of summarizer latency | "
        "later turns, + package / released |",
        "| --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        if "error" in row:
            lines.append(f"| {row['release']} | run failed: {row['error']} | | | |")
            continue
        runs = row["runs"]
        first = [_median([t[0] for t in runs[side]]) for side in SIDES]
        later = [_median([x for t in runs[side] for x in t[1:]]) for side in SIDES]
        lines.append(
            f"| {row['release']} | {SERVICE_LABELS[row['kind']]} | "
            f"{first[0]:.0f} / {first[1]:.0f} | "
            f"{check(row, summarizer_delay).cell()} | "
            f"{later[0]:.0f} / {later[1]:.0f} |"
        )
    return "\n".join(lines) + "\n"
