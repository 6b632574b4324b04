"""One (release, side) of the benchmark, inside that side's interpreter.

Run as ``python -m bench.worker SPEC OUT`` from the repository root: SPEC is a
JSON file written by ``bench.runner``; the results go to OUT as JSON. The
parent sets ``ADK_COMPACTION_BACKPORT_DISABLE`` for the sides without the
package, so those really are unpatched. Every workload runs twice on a fresh
database: with compaction and without it (the baseline), one after the other,
after an untimed warm-up per database (the first turns of a process pay for
lazy imports and connection set-up; neither side should carry that).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import tempfile
import traceback
import uuid
import warnings
from pathlib import Path
from typing import Any, Dict, List, Optional, Set

from bench.plan import warm_up_workload

SQLITE_SERVICE = "sqlite_service"


def _status() -> Dict[str, Any]:
    import adk_compaction_backport as acb

    return acb.status().as_dict()


def _one_workload(spec: Dict[str, Any], run: Dict[str, str], compaction: bool) -> Dict:
    from adk_compaction_backport.verify.scenario import Workload

    workload = Workload.from_mapping(
        spec["workload"], client=run["client"], api="async", compaction=compaction
    )
    return _on_fresh_database(spec, run["database"], workload)


def _warm_up(spec: Dict[str, Any], database: str) -> None:
    """One quick untimed session that compacts once; its figures are dropped."""
    _on_fresh_database(spec, database, warm_up_workload(spec["workload"]))


def _on_fresh_database(spec: Dict[str, Any], database: str, workload: Any) -> Dict:
    from adk_compaction_backport.verify.scenario import run_workload
    from adk_compaction_backport.verify.urls import database_url
    from devtools.databases import fresh_database

    storage = "sqlite" if database == SQLITE_SERVICE else database
    with fresh_database(storage, spec["postgres_url"]) as url:
        app_name = f"bench_{uuid.uuid4().hex[:8]}"
        service = _sqlite_service(url) if database == SQLITE_SERVICE else None
        report = asyncio.run(
            run_workload(database_url(url), workload, app_name, session_service=service)
        )
    return report.as_dict()


def _sqlite_service(url: str) -> Any:
    """``SqliteSessionService`` (1.19+) on the file, what ``adk web`` defaults to."""
    from google.adk.sessions.sqlite_session_service import SqliteSessionService

    return SqliteSessionService(db_path=url[len("sqlite:///") :])


def _run(spec: Dict[str, Any], run: Dict[str, str]) -> Dict[str, Any]:
    result: Dict[str, Any] = dict(run)
    try:
        result["baseline"] = _one_workload(spec, run, compaction=False)
        result["compaction"] = _one_workload(spec, run, compaction=True)
    except Exception as error:
        result["error"] = f"{error!r}"[:500]
        traceback.print_exc()
    return result


def main(argv: Optional[List[str]] = None) -> int:
    spec_path, out_path = argv or sys.argv[1:]
    spec = json.loads(Path(spec_path).read_text())
    warnings.simplefilter("ignore")
    # WARNING, not higher: the scenario counts warnings the loop and google-adk
    # log (a lost summary's "Task exception was never retrieved"); the parent
    # discards this process's stderr.
    logging.getLogger().setLevel(logging.WARNING)
    import google.adk.runners  # noqa: F401 - the start-up hook patches here

    import adk_compaction_backport as acb

    if spec["apply"]:
        acb.apply()  # a no-op when the start-up hook already did it
    output: Dict[str, Any] = {"status": _status(), "runs": []}
    warm: Set[str] = set()
    for run in spec["runs"]:
        if run["database"] not in warm:
            warm.add(run["database"])
            try:
                _warm_up(spec, run["database"])
            except Exception:
                traceback.print_exc()  # the run itself will say what is wrong
        output["runs"].append(_run(spec, run))
    if spec.get("turn_overhead"):
        from bench import turn_cost

        with tempfile.TemporaryDirectory(prefix="adk-bench-cost-") as tmp:
            output["turn_overhead"] = turn_cost.measure(
                Path(tmp), **spec["turn_overhead"]
            )
    Path(out_path).write_text(json.dumps(output))
    return 0


if __name__ == "__main__":
    sys.exit(main())
