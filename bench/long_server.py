"""Many long sessions at once on ONE real ``adk api_server`` (issue #22 item 3).

Run as ``python -m bench.long_server SPEC OUT`` in a release's package venv,
by ``bench.long_session_rows``. Per session service: one database prefilled
in this process (``SESSIONS`` sessions of ``EVENTS`` old events each, a summary
after every few invocations, through the service: ``bench.long_sessions.prefill``),
copied once per side so both sides start from the same rows; then per side one
server on its copy (released: ``ADK_COMPACTION_BACKPORT_DISABLE=1`` in the
server's environment, the package otherwise, applied by its start-up hook as
for a user), an untimed warm-up session, and every prefilled session driven
at once over HTTP by an eager client (the next message at the final reply).

Measured per side: each turn's time to its final reply; the wall time from
the first message to the end of the last stream; the server process's CPU
time over that span (``/proc/PID/stat``: the event loop's busy time, the fake
model and summarizer sleep without using any); failed turns (an error in the
stream or a non-200 answer); the summaries stored (read back through the
service) and the summarizer calls (the agent's calls file).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
import traceback
import uuid
import warnings
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

from bench.long_sessions import (
    PREFILLED_SUMMARY,
    SQLITE_SERVICE,
    measure_each,
    prefill,
    session_service,
)
from bench.overhead import OPT_OUT
from bench.plan import warm_up_workload
from devtools.api_server import Server, launch, stop

READY_TIMEOUT = 300.0
SIDES = ("released", "package")
SETTLE_S = 3.0  # 1.16-1.18 compact in a background task after the stream


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _dispose(service: Any) -> None:
    """Close a service's connections (a PostgreSQL template must have none)."""
    engine = getattr(service, "db_engine", None)
    if engine is not None:
        result = engine.dispose()
        if asyncio.iscoroutine(result):
            await result


async def _prefill(
    kind: str, url: str, app: str, sessions: int, events: int, workload: Dict
) -> List:
    from adk_compaction_backport.verify.scenario import USER_ID

    service = session_service(kind, url)
    ids = []
    for _ in range(sessions):
        session = await service.create_session(app_name=app, user_id=USER_ID)
        await prefill(
            service, session, events, workload["interval"], workload["overlap"]
        )
        ids.append(session.id)
    await _dispose(service)
    return ids


async def _stored(kind: str, url: str, app: str, ids: List[str]) -> int:
    """Summaries the turns stored (the prefilled one not counted)."""
    from adk_compaction_backport.verify.scenario import USER_ID

    service = session_service(kind, url)
    summaries = 0
    for session_id in ids:
        stored = await service.get_session(
            app_name=app, user_id=USER_ID, session_id=session_id
        )
        summaries += sum(
            getattr(e.actions, "compaction", None) is not None
            and e.invocation_id != PREFILLED_SUMMARY
            for e in stored.events
        )
    await _dispose(service)
    return summaries


@contextlib.contextmanager
def _copies(kind: str, url: str, postgres_url: str) -> Iterator[Dict[str, str]]:
    """One copy of the prefilled database per side, removed afterwards."""
    from devtools.databases import driverless, drop_database, execute, with_database

    if kind == "postgresql":
        server = driverless(postgres_url)
        template = url.rsplit("/", 1)[1]
        urls = {}
        try:
            for side in SIDES:
                name = f"adk_bench_{uuid.uuid4().hex[:12]}"
                execute(server, f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
                urls[side] = with_database(server, name)
            yield urls
        finally:
            for copy in urls.values():
                drop_database(server, copy)
        return
    source = Path(url[len("sqlite:///") :])
    urls = {}
    for side in SIDES:
        target = source.with_name(f"{side}.db")
        shutil.copyfile(source, target)
        urls[side] = f"sqlite:///{target}"
    yield urls


def _served_uri(kind: str, url: str) -> str:
    """``sqlite://`` goes to SqliteSessionService (1.19+); the others to
    DatabaseSessionService with the release's driver."""
    from adk_compaction_backport.verify.urls import database_url

    return url if kind == SQLITE_SERVICE else database_url(url)


def _launch(tmp: Path, agents: Path, uri: str, side: str) -> Server:
    saved = os.environ.pop(OPT_OUT, None)
    if side == "released":
        os.environ[OPT_OUT] = "1"
    try:
        return launch(tmp, agents, uri, f"server-{side}.log")
    finally:
        os.environ.pop(OPT_OUT, None)
        if saved is not None:
            os.environ[OPT_OUT] = saved


async def _drive(base_url: str, app: str, ids: List[str], workload: Any) -> Any:
    """Every session at once, eager clients, over one HTTP client."""
    import httpx

    from adk_compaction_backport.verify.http_client import drive_session
    from adk_compaction_backport.verify.scenario import USER_ID, Report

    report = Report(workload={})
    timeout = httpx.Timeout(120.0 + 4 * workload.summarizer_delay * workload.turns)
    limits = httpx.Limits(max_connections=4 * len(ids) + 10)
    async with httpx.AsyncClient(
        base_url=base_url, timeout=timeout, limits=limits
    ) as client:
        await asyncio.gather(
            *(
                drive_session([client], app, USER_ID, sid, n, workload, report)
                for n, sid in enumerate(ids)
            )
        )
    return report


def _side(
    spec: Dict[str, Any], tmp: Path, agents: Path, kind: str, url: str, side: str
) -> Dict[str, Any]:
    from adk_compaction_backport.verify.http_client import run_http_workload
    from adk_compaction_backport.verify.scenario import Workload

    app, ids = spec["app"], spec["ids"]
    workload = Workload.from_mapping(
        spec["workload"], sessions=len(ids), turns=spec["turns"], client="eager"
    )
    server = _launch(tmp, agents, _served_uri(kind, url), side)
    try:
        server.wait_until_ready(READY_TIMEOUT)
        asyncio.run(
            run_http_workload(
                server.base_url, "warm_up", warm_up_workload(spec["workload"])
            )
        )
        before_log = server.log_size()
        calls = tmp / f"{app}.calls"
        calls_before = len(calls.read_text().splitlines()) if calls.exists() else 0
        cpu, wall = _cpu_seconds(server.process.pid), time.perf_counter()
        report = asyncio.run(_drive(server.base_url, app, ids, workload))
        wall = time.perf_counter() - wall
        time.sleep(SETTLE_S)
        cpu = _cpu_seconds(server.process.pid) - cpu
        calls_after = len(calls.read_text().splitlines()) if calls.exists() else 0
        log_errors = server.bad_lines(before_log)
        alive = server.process.poll() is None
    finally:
        stop(server)
    if not alive:
        raise RuntimeError(f"the {side} server exited:\n{server.log_tail()}")
    turns = report.turns
    ok_turns = turns - report.turns_failed
    return {
        "turns": turns,
        "failed_turns": report.turns_failed,
        "failures": report.errors[:5],
        "turn_ms": [s * 1000 for s in report.turn_latencies],
        "stream_ms": [s * 1000 for s in report.stream_latencies],
        "wall_s": wall,
        "turns_per_s": ok_turns / wall,
        "all_turns_per_s": turns / wall,
        "server_cpu_s": cpu,
        "cpu_s_per_turn": cpu / max(turns, 1),
        "summaries": asyncio.run(_stored(kind, url, app, ids)),
        "summarizer_calls": calls_after - calls_before,
        "log_errors": log_errors,
    }


def _measure(spec: Dict[str, Any], run: Dict[str, Any]) -> Dict[str, Any]:
    """Both sides of one (session service, sessions, events) row."""
    from adk_compaction_backport.verify.served_agent import write_agents_dir
    from devtools.databases import fresh_database

    kind, w = run["kind"], spec["workload"]
    storage = "sqlite" if kind == SQLITE_SERVICE else kind
    result: Dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="adk-bench-") as name:
        tmp = Path(name)
        agents, app = tmp / "agents", f"long_{uuid.uuid4().hex[:8]}"
        for agent in ("warm_up", app):
            warm = agent == "warm_up"
            write_agents_dir(
                agents,
                agent,
                interval=w["interval"],
                overlap=w["overlap"],
                summarizer_delay=0.0 if warm else w["summarizer_delay"],
                reply_delay=0.0 if warm else w["reply_delay"],
                calls_file=tmp / f"{agent}.calls",
            )
        with fresh_database(storage, spec["postgres_url"]) as url:
            started = time.perf_counter()
            ids = asyncio.run(
                _prefill(kind, url, app, run["sessions"], run["events"], w)
            )
            result["prefill_s"] = time.perf_counter() - started
            _log(f"{run}: prefilled in {result['prefill_s']:.0f} s")
            side_spec = {**spec, **run, "app": app, "ids": ids}
            with _copies(kind, url, spec["postgres_url"]) as urls:
                for side in spec.get("order", SIDES):
                    try:
                        result[side] = _side(
                            side_spec, tmp, agents, kind, urls[side], side
                        )
                    except Exception as error:
                        result[side] = {"error": f"{error!r}"[:500]}
                        traceback.print_exc()
                    _log(f"{run} {side}: {_brief(result[side])}")
    return result


def _brief(result: Dict[str, Any]) -> str:
    if "error" in result:
        return f"failed: {result['error'][:200]}"
    return (
        f"{result['turns_per_s']:.2f} ok turns/s, {result['failed_turns']} failed, "
        f"{result['summaries']} summaries / {result['summarizer_calls']} calls, "
        f"CPU {result['cpu_s_per_turn'] * 1000:.0f} ms/turn"
    )


def _log(text: str) -> None:
    print(f"bench.long_server: {text}", file=sys.stderr, flush=True)


def main(argv: Optional[List[str]] = None) -> int:
    spec_path, out_path = argv or sys.argv[1:]
    spec = json.loads(Path(spec_path).read_text())
    warnings.simplefilter("ignore")
    runs = measure_each(spec, _measure)
    Path(out_path).write_text(json.dumps({"runs": runs}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
