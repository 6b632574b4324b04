"""Several ``adk api_server`` workers on one database, inside a side's venv.

Run as ``python -m bench.servers SPEC OUT`` from the repository root, by
``bench.runner.run_servers``: SPEC is a JSON file, the results go to OUT as
JSON. The parent sets ``ADK_COMPACTION_BACKPORT_DISABLE`` for the released
side; the servers inherit this process's environment, so they run the side
the parent asked for (the package's start-up hook applies in each of them as
it would for a user).

Per (release, side): one new PostgreSQL database and as many real servers as
the largest worker count, started once (a google-adk import takes seconds to
tens of seconds). Each row (workers, client) has an agent (an app) of its own
in the same agents directory, so its sessions, its summarizer-calls file and
its figures are its own; an ``N``-worker row sends each session's turns
round-robin to the first ``N`` servers, as a load balancer without session
affinity would. Every server first serves an untimed warm-up session (lazy
imports, the first connections). Server logs stay in a temporary directory;
their tails go to stderr when something fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
import traceback
import uuid
import warnings
from pathlib import Path
from typing import Any, Dict, List, Optional

from bench.plan import warm_up_workload
from devtools.api_server import Server, launch, stop

READY_TIMEOUT = 300.0  # two 1.18 servers importing at once on a busy 2 cores


def _print_tails(servers: List[Server]) -> None:
    for n, server in enumerate(servers):
        print(f"--- server {n} ({server.base_url}), last lines of {server.log}:")
        print(server.log_tail(), flush=True)


def _row_agent(workers: int, client: str) -> str:
    return f"w{workers}_{client}_{uuid.uuid4().hex[:6]}"


def _workload(spec: Dict[str, Any], client: str) -> Any:
    from adk_compaction_backport.verify.scenario import Workload

    return Workload.from_mapping(spec["workload"], client=client)


def _run_row(
    servers: List[Server], app: str, calls: Path, workload: Any
) -> Dict[str, Any]:
    from adk_compaction_backport.verify.http_client import run_http_workload

    report = asyncio.run(
        run_http_workload(
            servers[0].base_url,
            app,
            workload,
            calls_file=calls,
            also=[s.base_url for s in servers[1:]],
        )
    )
    return report.as_dict()


def _warm_up(servers: List[Server], spec: Dict[str, Any], agent: str) -> None:
    """One quick untimed session per server, compacting once."""
    workload = warm_up_workload(spec["workload"])
    for server in servers:
        _run_row([server], agent, Path(os.devnull), workload)


def run(spec: Dict[str, Any], tmp: Path, url: str) -> List[Dict[str, Any]]:
    """Every (workers, client) row on ``url``'s database."""
    from adk_compaction_backport.verify.served_agent import write_agents_dir
    from adk_compaction_backport.verify.urls import database_url

    w = spec["workload"]
    agents_dir = tmp / "agents"
    rows = [(n, c) for n in spec["workers"] for c in spec["clients"]]
    agents = {row: _row_agent(*row) for row in rows}
    warm = "warm_up"
    for name in [warm, *agents.values()]:
        write_agents_dir(
            agents_dir,
            name,
            interval=w["interval"],
            overlap=w["overlap"],
            summarizer_delay=0.0 if name == warm else w["summarizer_delay"],
            reply_delay=0.0 if name == warm else w["reply_delay"],
            calls_file=tmp / f"{name}.calls",
        )
    servers: List[Server] = []
    results: List[Dict[str, Any]] = []
    try:
        for n in range(max(spec["workers"])):  # all import at once
            log_name = f"server{n}.log"
            servers.append(launch(tmp, agents_dir, database_url(url), log_name))
        started = time.perf_counter()
        try:
            for server in servers:
                server.wait_until_ready(READY_TIMEOUT)
        except Exception:
            _print_tails(servers)  # why one exited (or never answered)
            raise
        _log(f"{len(servers)} servers ready in {time.perf_counter() - started:.0f} s")
        _warm_up(servers, spec, warm)
        for (workers, client), agent in agents.items():
            result: Dict[str, Any] = {"workers": workers, "client": client}
            before = [s.bad_lines() for s in servers]
            try:
                workload = _workload(spec, client)
                result["report"] = _run_row(
                    servers[:workers], agent, tmp / f"{agent}.calls", workload
                )
            except Exception as error:
                result["error"] = f"{error!r}"[:500]
                traceback.print_exc()
                _print_tails(servers)
            result["log_errors"] = sum(
                s.bad_lines() - b for s, b in zip(servers, before)
            )
            dead = [n for n, s in enumerate(servers) if s.process.poll() is not None]
            if dead:
                result.setdefault("error", f"server(s) {dead} exited")
                _print_tails(servers)
            results.append(result)
            _log(f"{workers} worker(s), {client}: {_brief(result)}")
    except Exception:
        _print_tails(servers)
        raise
    finally:
        for server in servers:
            stop(server)
    return results


def _brief(result: Dict[str, Any]) -> str:
    if "error" in result:
        return f"failed: {result['error'][:200]}"
    r = result["report"]
    return (
        f"{r['turns_failed']} failed, {r['summaries_stored']}/"
        f"{r['summaries_expected']} summaries, {r['summarizer_calls']} calls"
    )


def _status() -> Dict[str, Any]:
    import adk_compaction_backport as acb

    return acb.status().as_dict()


def _log(text: str) -> None:
    print(f"bench.servers: {text}", file=sys.stderr, flush=True)


def main(argv: Optional[List[str]] = None) -> int:
    spec_path, out_path = argv or sys.argv[1:]
    spec = json.loads(Path(spec_path).read_text())
    warnings.simplefilter("ignore")
    from devtools.databases import fresh_database

    output: Dict[str, Any] = {"status": None, "runs": []}
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="adk-bench-"))
        url = stack.enter_context(fresh_database("postgresql", spec["postgres_url"]))
        output["runs"] = run(spec, Path(tmp), url)
    # The servers' status, as this interpreter sees it (same venv, same env).
    import google.adk.runners  # noqa: F401 - the start-up hook patches here

    output["status"] = _status()
    Path(out_path).write_text(json.dumps(output))
    return 0


if __name__ == "__main__":
    sys.exit(main())
