"""Per-turn cost of an app without compaction, with vs without the package.

Runs inside the worker, or alone in a release's bench venv (``python -m
bench.turn_cost ROUNDS TURNS`` prints the ratio as JSON). One process, one
event loop, one SQLite file: blocks of turns alternate between ``apply()``
and ``revert()`` (the order flips every round so drift cancels out), each
block on a fresh session so both sides see sessions of the same length.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Dict, List, Tuple

import adk_compaction_backport as acb
from adk_compaction_backport.verify.fake_model import SummarizerControl, make_app
from adk_compaction_backport.verify.scenario import USER_ID, message
from adk_compaction_backport.verify.urls import database_url
from bench.stats import cpu_and_wall


async def _block(service: Any, app: Any, turns: int) -> Tuple[float, float]:
    """(CPU, wall) seconds per turn over ``turns`` sequential turns.

    CPU is this process's (every thread's) time: other work on the machine
    disturbs it much less than wall time.
    """
    from google.adk.runners import Runner

    runner = Runner(app=app, session_service=service)
    session_id = f"cost-{uuid.uuid4().hex[:12]}"
    await service.create_session(
        app_name=app.name, user_id=USER_ID, session_id=session_id
    )
    cpu, wall = time.process_time(), time.perf_counter()
    for turn in range(turns):
        async for _ in runner.run_async(
            user_id=USER_ID, session_id=session_id, new_message=message(0, turn)
        ):
            pass
    return (
        (time.process_time() - cpu) / turns,
        (time.perf_counter() - wall) / turns,
    )


async def _alternate(workdir: Path, rounds: int, turns: int) -> Dict[str, Any]:
    from google.adk.sessions.database_session_service import DatabaseSessionService

    service = DatabaseSessionService(
        db_url=database_url(f"sqlite:///{workdir / 'turn-cost.db'}")
    )
    app = make_app(SummarizerControl(), compaction=False, name="turn_cost")
    times: Dict[bool, List[Tuple[float, float]]] = {True: [], False: []}

    async def side(patched: bool) -> Tuple[float, float]:
        if patched:
            acb.apply()
        else:
            acb.revert()
        return await _block(service, app, turns)

    await side(True)  # warm-up: first-use costs land on neither side
    await side(False)
    for n in range(rounds):
        order = (True, False) if n % 2 == 0 else (False, True)
        for patched in order:
            times[patched].append(await side(patched))
    acb.apply()
    return cpu_and_wall(
        ([t[0] for t in times[True]], [t[0] for t in times[False]]),
        ([t[1] for t in times[True]], [t[1] for t in times[False]]),
    )


def measure(workdir: Path, rounds: int, turns: int) -> Dict[str, Any]:
    """The per-turn ratio (with / without), plus what ``apply()`` said."""
    result = asyncio.run(_alternate(workdir, rounds, turns))
    result["status"] = acb.status().as_dict()
    return result


if __name__ == "__main__":
    with tempfile.TemporaryDirectory(prefix="adk-bench-") as tmp:
        rounds, turns = (int(arg) for arg in sys.argv[1:3])
        print(json.dumps(measure(Path(tmp), rounds, turns)))
