"""The first turns of a fresh ``adk api_server``, with the package and without.

Run as ``python -m bench.first_turn SPEC OUT`` in a release's bench venv (the
one with the package): each round starts one new server per side (released:
``ADK_COMPACTION_BACKPORT_DISABLE=1`` in the server's environment) on a new
SQLite file, with no warm-up, and times the first turns of one session read
sequentially. The sides alternate, and their order flips every round. What
the first turn of a process pays for (lazy imports, the first connections,
installing the wrappers of modules imported late) is what this measures; the
main benchmark leaves it out on purpose.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any, Dict, List, Optional

from bench.overhead import OPT_OUT
from devtools.api_server import launch, stop

AGENT = "first_turn"
READY_TIMEOUT = 300.0
SIDES = ("package", "released")


def _service_uri(kind: str, folder: Path) -> str:
    """``database``: DatabaseSessionService on SQLite; ``sqlite_service``: the
    ``sqlite://`` URI, which ``adk api_server`` maps to SqliteSessionService
    (1.19+)."""
    from adk_compaction_backport.verify.urls import database_url

    if kind == "sqlite_service":
        return f"sqlite:///{folder / 'sessions.db'}"
    return database_url(f"sqlite:///{folder / 'sessions.db'}")


def _one_server(spec: Dict[str, Any], kind: str, side: str) -> List[float]:
    """Turn latencies (ms) of one session on a server started for it alone."""
    from adk_compaction_backport.verify.http_client import run_http_workload
    from adk_compaction_backport.verify.scenario import Workload
    from adk_compaction_backport.verify.served_agent import write_agents_dir

    w = spec["workload"]
    with tempfile.TemporaryDirectory(prefix="adk-bench-first-") as name:
        tmp = Path(name)
        calls = tmp / "calls"
        write_agents_dir(
            tmp / "agents",
            AGENT,
            interval=w["interval"],
            overlap=w["overlap"],
            summarizer_delay=w["summarizer_delay"],
            reply_delay=w["reply_delay"],
            calls_file=calls,
        )
        os.environ.pop(OPT_OUT, None)
        if side == "released":
            os.environ[OPT_OUT] = "1"
        try:
            server = launch(tmp, tmp / "agents", _service_uri(kind, tmp))
        finally:
            os.environ.pop(OPT_OUT, None)
        try:
            server.wait_until_ready(READY_TIMEOUT)
            workload = Workload.from_mapping(
                w, sessions=1, turns=spec["turns"], client="sequential"
            )
            report = asyncio.run(
                run_http_workload(server.base_url, AGENT, workload, calls_file=calls)
            )
        finally:
            stop(server)
    if report.turns_failed:
        raise RuntimeError(f"{side} on {kind}: {report.turns_failed} turns failed")
    return [seconds * 1000 for seconds in report.turn_latencies]


def measure(spec: Dict[str, Any]) -> Dict[str, Dict[str, List[List[float]]]]:
    """kind -> side -> one list of turn latencies (ms) per round."""
    runs: Dict[str, Dict[str, List[List[float]]]] = {}
    for kind in spec["kinds"]:
        runs[kind] = {side: [] for side in SIDES}
        for n in range(spec["rounds"]):
            for side in SIDES if n % 2 == 0 else SIDES[::-1]:
                runs[kind][side].append(_one_server(spec, kind, side))
    return runs


def main(argv: Optional[List[str]] = None) -> int:
    spec_path, out_path = argv or sys.argv[1:]
    spec = json.loads(Path(spec_path).read_text())
    warnings.simplefilter("ignore")
    output: Dict[str, Any] = {"runs": measure(spec)}
    Path(out_path).write_text(json.dumps(output))
    return 0


if __name__ == "__main__":
    sys.exit(main())
