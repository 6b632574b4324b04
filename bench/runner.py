"""Runs each (release, side) in its own interpreter and collects the figures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

from bench.envs import Envs
from bench.metrics import summarize
from bench.overhead import OPT_OUT
from bench.plan import LOCK_OFF, REPO, Plan

CROSS_PROCESS = "ADK_COMPACTION_BACKPORT_CROSS_PROCESS"


def package_pythons(plan: Plan) -> Iterator[Tuple[str, Path]]:
    """Each release of the plan with the interpreter that has it and the package
    (``--here``: the installed release and this interpreter)."""
    if plan.here:
        yield metadata.version("google-adk"), Path(sys.executable)
        return
    envs = Envs(plan.cache, plan.venv_python)
    for release in plan.releases:
        yield release, envs.package(release)


def _worker_env(side: str) -> Dict[str, str]:
    env = dict(os.environ)
    env.pop(OPT_OUT, None)
    env.pop(CROSS_PROCESS, None)
    env.pop("VIRTUAL_ENV", None)
    env["PYTHONWARNINGS"] = "ignore"
    if side == LOCK_OFF:
        env[CROSS_PROCESS] = "0"  # the package, without its cross-process lock
    elif side != "package":
        env[OPT_OUT] = "1"  # released and patched: the package stays out
    return env


def _spec(plan: Plan, side: str, turn_overhead: bool) -> Dict[str, Any]:
    spec: Dict[str, Any] = {
        "apply": side == "package",
        "postgres_url": plan.postgres_url,
        "workload": plan.workload.as_dict(),
        "runs": [
            {"database": db, "client": client}
            for db in plan.databases
            for client in plan.clients
        ],
        "turn_overhead": None,
    }
    if turn_overhead and plan.rounds.turn > 0:
        spec["turn_overhead"] = {
            "rounds": plan.rounds.turn,
            "turns": plan.rounds.turn_block,
        }
    return spec


def run_module(
    python: Path, module: str, spec: Dict[str, Any], side: str
) -> Tuple[subprocess.CompletedProcess, Optional[Dict[str, Any]], float]:
    """Run ``python -m module SPEC OUT`` in a release's venv: the process, what
    it wrote to OUT (None if nothing), and the seconds it took."""
    with tempfile.TemporaryDirectory(prefix="adk-bench-") as tmp:
        spec_path, out_path = Path(tmp) / "spec.json", Path(tmp) / "out.json"
        spec_path.write_text(json.dumps(spec))
        started = time.perf_counter()
        done = subprocess.run(
            [str(python), "-m", module, str(spec_path), str(out_path)],
            cwd=REPO,
            env=_worker_env(side),
            capture_output=True,
            text=True,
            timeout=1800,
            check=False,
        )
        took = time.perf_counter() - started
        try:
            output = json.loads(out_path.read_text()) if out_path.exists() else None
        except ValueError:  # cut short while writing it
            output = None
        return done, output, took


def _failure(done: subprocess.CompletedProcess) -> Dict[str, str]:
    tail = done.stderr.strip().splitlines()[-3:]
    return {"error": " / ".join(tail) or f"exit code {done.returncode}"}


def run_side(
    python: Path, plan: Plan, release: str, side: str, turn_overhead: bool
) -> Dict[str, Any]:
    """The worker's output for one (release, side), or ``{"error": ...}``."""
    spec = _spec(plan, side, turn_overhead)
    done, output, took = run_module(python, "bench.worker", spec, side)
    _log(f"google-adk {release} {side}: {took:.0f} s")
    if done.returncode != 0 or output is None:
        return _failure(done)
    return output


def run_servers(python: Path, plan: Plan, release: str, side: str) -> Dict[str, Any]:
    """``bench.servers``' output for one (release, side), or ``{"error": ...}``.

    Its stderr (progress, server log tails on failure) is shown when a row
    failed.
    """
    spec = {
        "postgres_url": plan.postgres_url,
        "workload": plan.workload.as_dict(),
        "workers": sorted(set(plan.workers)),
        "clients": plan.clients,
    }
    try:
        done, output, took = run_module(python, "bench.servers", spec, side)
    except subprocess.TimeoutExpired as error:
        return {"error": f"timed out after {error.timeout:.0f} s"}
    _log(f"google-adk {release} {side}, api_server workers: {took:.0f} s")
    failed = output is None or any("error" in r for r in output["runs"])
    if done.returncode != 0 or failed:
        print("\n".join(done.stderr.splitlines()[-80:]), file=sys.stderr)
    if done.returncode != 0 or output is None:
        return _failure(done)
    return output


def server_rows(release: str, side: str, output: Dict[str, Any]) -> List[Dict]:
    """One table row per (workers, client) of ``bench.servers``' output."""
    rows = []
    for run in output.get("runs", []):
        row = _row(
            release,
            side,
            run,
            "workers",
            "client",
            status=output.get("status"),
            log_errors=run.get("log_errors"),
        )
        if "error" not in run:
            row["result"] = summarize(run["report"])
        rows.append(row)
    return rows


def failed_servers(plan: Plan, release: str, side: str, error: str) -> List[Dict]:
    return [
        {
            "release": release,
            "side": side,
            "workers": n,
            "client": client,
            "status": None,
            "error": error,
        }
        for n in sorted(set(plan.workers))
        for client in plan.clients
    ]


def configurations(release: str, side: str, output: Dict[str, Any]) -> List[Dict]:
    """One table row per (database, client) of a worker's output."""
    rows = []
    status = output.get("status")
    for run in output.get("runs", []):
        row = _row(release, side, run, "database", "client", status=status)
        if "error" not in run:
            row["compaction"] = summarize(run["compaction"])
            row["baseline"] = summarize(run["baseline"])
        rows.append(row)
    return rows


def _row(
    release: str, side: str, run: Dict[str, Any], *keys: str, **more: Any
) -> Dict[str, Any]:
    """A table row without its figures: release, side, the run's ``keys``,
    ``more``, and the run's error if it failed (then it has no figures)."""
    row = {"release": release, "side": side, **{k: run[k] for k in keys}, **more}
    if "error" in run:
        row["error"] = run["error"]
    return row


def failed_side(
    plan: Plan, release: str, side: str, error: Optional[str]
) -> List[Dict]:
    """Rows for a side whose interpreter could not run at all."""
    return [
        {
            "release": release,
            "side": side,
            "database": db,
            "client": client,
            "status": None,
            "error": error or "unknown error",
        }
        for db in plan.databases
        for client in plan.clients
    ]


def _log(text: str) -> None:
    print(f"bench: {text}", file=sys.stderr, flush=True)
