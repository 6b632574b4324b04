"""``verify``: the race against the installed google-adk, without and with the fix.

Each side runs in its own interpreter so the unpatched side is really unpatched.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from typing import Dict, List, Optional, Tuple

SERVER_WAIT = 10.0  # seconds for ``verify --server`` to find its server up

ROWS = (
    ("turns", "turns"),
    ("turns failed", "turns_failed"),
    ("user messages lost", "user_messages_lost"),
    ("summaries expected", "summaries_expected"),
    ("summaries stored", "summaries_stored"),
    ("summaries duplicated", "summaries_duplicated"),
    ("summaries with a wrong range", "summaries_unexpected"),
    ("summarizer calls", "summarizer_calls"),
    ("errors logged", "errors"),
)


def _run_side(patched: bool, child_args: List[str]) -> Dict:
    env = dict(os.environ)
    env.pop("ADK_COMPACTION_BACKPORT_DISABLE", None)
    if not patched:
        env["ADK_COMPACTION_BACKPORT_DISABLE"] = "1"
    args = [sys.executable, "-m", "adk_compaction_backport.verify.child", *child_args]
    args += [
        "--app-name",
        f"verify_{'fixed' if patched else 'unfixed'}_{uuid.uuid4().hex[:8]}",
    ]
    if patched:
        args.append("--patched")
    done = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-5:]
        return {"crashed": "\n".join(tail) or f"exit code {done.returncode}"}
    return json.loads(done.stdout)


def _cell(result: Dict, key: str) -> str:
    if "crashed" in result:
        return "crashed"
    value = result[key]
    return str(len(value)) if isinstance(value, list) else str(value)


def _table(title: str, before: Dict, after: Dict) -> str:
    lines = [title, f"  {'':30} {'without fix':>12} {'with fix':>10}"]
    for label, key in ROWS:
        lines.append(f"  {label:30} {_cell(before, key):>12} {_cell(after, key):>10}")
    for name, result in (("without fix", before), ("with fix", after)):
        for error in result.get("errors", [])[:3]:
            lines.append(f"  {name}: {error}")
        if "crashed" in result:
            lines.append(f"  {name} crashed: {result['crashed']}")
    return "\n".join(lines)


def _say(text: str, end: str = "\n") -> None:
    """Progress and setup problems: on stderr, so stdout keeps the tables."""
    print(text, end=end, file=sys.stderr, flush=True)


def _not_applicable() -> Optional[str]:
    """Why the fix does not apply to the installed google-adk, if it does not.

    Decided as the patched side will decide (from the source, importing
    nothing), then undone: this process only checks the setup.
    """
    import adk_compaction_backport as acb

    state = acb.apply()
    acb.revert()
    return None if state.applied else state.reason


def verify(
    clients: List[str], api: str, db_url: Optional[str], workload_args: List[str]
) -> int:
    """Print a before/after table per client.

    Exit status: 0 when the fix holds, 1 when it does not, 2 when it does not
    apply to the installed google-adk or the session service cannot be opened
    (nothing was run).
    """
    from adk_compaction_backport._activation import installed_adk_version
    from adk_compaction_backport.verify.setup_check import SetupProblem, open_once

    reason = _not_applicable()
    if reason is not None:
        _say(f"nothing was verified: {reason}")
        return 2
    try:
        opened = open_once(db_url)
    except SetupProblem as problem:
        _say(str(problem))
        return 2
    where = "your database" if db_url else "a temporary SQLite file"
    _say(f"google-adk {installed_adk_version()}: {opened} on {where} opened")
    failures = 0
    cells = [(client, patched) for client in clients for patched in (False, True)]
    results: Dict[Tuple[str, bool], Dict] = {}
    for number, (client, patched) in enumerate(cells, 1):
        child_args = ["--client", client, "--api", api, *workload_args]
        if db_url:
            child_args += ["--db-url", db_url]
        side = "with the fix" if patched else "without the fix"
        _say(f"[{number}/{len(cells)}] {client} client, {side} ...", end="")
        started = time.monotonic()
        results[client, patched] = _run_side(patched, child_args)
        outcome = "crashed" if "crashed" in results[client, patched] else "done"
        _say(f" {outcome} in {time.monotonic() - started:.0f} s")
        if not patched:
            continue
        before, after = results[client, False], results[client, True]
        service = after.get("service") or before.get("service")
        title = f"google-adk {installed_adk_version()}, {where}"
        title += f" ({service})" if service else ""
        title += f", {client} client, {api} API"
        print(_table(title, before, after))
        print(flush=True)
        if "crashed" not in after and not after.get("applied"):
            _say(f"nothing was verified: the fix was not applied: {after['reason']}")
            return 2
        if "crashed" in after or not after.get("ok"):
            failures += 1
    if failures:
        print("the fix did not hold in every run above")
        return 1
    print("with the fix: no failed turn, no lost message, every summary stored once")
    return 0


def verify_server(
    base_url: str,
    agent: str,
    clients: List[str],
    workload: Dict,
    user_id: str = "user",
) -> int:
    """Run the workload against a running ``adk api_server``; one column per run.

    The server's own setup is what is checked (its google-adk, its session
    service, whether the fix is installed there). Exit status: 0 when every
    turn and summary came through, 1 otherwise, 2 when the server cannot be
    reached or does not serve ``agent``.
    """
    base_url = base_url.rstrip("/")
    if not base_url.startswith(("http://", "https://")):
        _say(f"--server {base_url}: expected an http:// or https:// URL")
        return 2
    import asyncio

    from adk_compaction_backport.verify.http_client import (
        ServerNotReady,
        run_http_workload,
        served_apps,
        wait_until_ready,
    )
    from adk_compaction_backport.verify.scenario import Workload

    _say(
        f"waiting up to {SERVER_WAIT:.0f} s for an ADK server at {base_url} "
        "to answer GET /list-apps ..."
    )
    try:
        wait_until_ready(base_url, timeout=SERVER_WAIT)
        apps = served_apps(base_url)
    except ServerNotReady as error:
        _say(f"cannot reach an ADK server at {base_url}: {error}")
        return 2
    if agent not in apps:
        _say(
            f"the server at {base_url} serves no agent named {agent!r} "
            f"(it serves: {', '.join(apps) or 'none'}); name one with --agent"
        )
        return 2
    failures = 0
    for number, client in enumerate(clients, 1):
        _say(f"[{number}/{len(clients)}] {client} client against {base_url} ...")
        report = asyncio.run(
            run_http_workload(
                base_url,
                agent,
                Workload.from_mapping(workload, client=client),
                user_id=user_id,
            )
        )
        result = report.as_dict()
        lines = [
            f"{base_url}, agent {agent}, {client} client",
            f"  {'':30} {'server':>12}",
        ]
        for label, key in ROWS:
            if key == "summarizer_calls":
                continue  # the summarizer runs in the server
            lines.append(f"  {label:30} {_cell(result, key):>12}")
        lines += [f"  {error}" for error in report.errors[:3]]
        print("\n".join(lines))
        print()
        ok = (
            report.turns_failed == 0
            and report.user_messages_lost == 0
            and report.summaries_stored == report.summaries_expected
            and report.summaries_duplicated == 0
            and report.summaries_unexpected == 0
            and not report.errors
        )
        failures += 0 if ok else 1
    if failures:
        print("the server lost turns or summaries in a run above")
        return 1
    print("no failed turn, no lost message, every summary stored once")
    return 0
