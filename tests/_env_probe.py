"""Run by ``test_hostile_environments.py`` in a fresh interpreter; prints JSON.

``python _env_probe.py PRELUDE [EPILOGUE]`` executes PRELUDE (the hostile
part), imports google-adk's runner, executes EPILOGUE, and reports
``status()``, which of the functions the fix wraps are ours (all or none:
never half-patched), and what the snippets stored in the ``report`` dict they
share (``run_turns`` is at their disposal too).
"""

from __future__ import annotations

import asyncio
import importlib
import json
import sys
import threading
from typing import Any, Dict, List, Optional, Tuple


def targets(status: Any) -> List[Tuple[str, str]]:
    """The functions the fix wraps here: all of them ours, or none.

    Applied: what ``status()`` lists. Not applied: every function the release
    family wraps on all of its releases (variant-only wrappers excluded).
    """
    from adk_compaction_backport._guards import family_for

    family = family_for(status.adk_version)
    if family is None:
        return []
    wanted = [
        code
        for code in family.wrapped
        if (
            code.qualname in status.patched
            if status.applied
            else not (code.variant or code.optional or code.needs_extra)
        )
    ]
    return [(code.module, code.path) for code in wanted]


def ours(module: str, path: str) -> bool:
    from adk_compaction_backport._patching import is_ours

    owner: Any = importlib.import_module(module)
    *parents, name = path.split(".")
    for part in parents:
        owner = getattr(owner, part)
    return is_ours(vars(owner)[name])


def run_turns(db_url: Optional[str], sessions: int, threads: bool) -> List[int]:
    """Two turns on each session; the summaries each session stored.

    ``threads``: every session's turns run with sync ``Runner.run`` in a
    thread of its own, all threads started at once. Otherwise ``run_async``.
    """
    from google.adk.runners import Runner
    from google.adk.sessions import InMemorySessionService
    from google.adk.sessions.database_session_service import DatabaseSessionService

    import adk_compaction_backport as acb
    from adk_compaction_backport.verify.fake_model import SummarizerControl, make_app
    from adk_compaction_backport.verify.scenario import USER_ID, message

    app = make_app(SummarizerControl())
    service = (
        DatabaseSessionService(db_url=db_url) if db_url else InMemorySessionService()
    )
    runner = Runner(app=app, session_service=service)
    ids = [f"s{n}" for n in range(sessions)]
    key = {"app_name": app.name, "user_id": USER_ID}
    for session_id in ids:
        asyncio.run(service.create_session(**key, session_id=session_id))
    start = threading.Barrier(sessions)

    def sync_turns(number: int) -> None:
        start.wait()
        for turn in (1, 2):
            kwargs = {"session_id": ids[number], "new_message": message(number, turn)}
            list(runner.run(user_id=USER_ID, **kwargs))

    async def async_turns() -> None:
        for number, session_id in enumerate(ids):
            for turn in (1, 2):
                message_ = message(number, turn)
                async for _ in runner.run_async(
                    user_id=USER_ID, session_id=session_id, new_message=message_
                ):
                    pass
        await acb.drain()

    if threads:
        workers = [
            threading.Thread(target=sync_turns, args=(n,)) for n in range(sessions)
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    else:
        asyncio.run(async_turns())
    stored = [
        asyncio.run(service.get_session(**key, session_id=session_id))
        for session_id in ids
    ]
    return [sum(1 for e in s.events if e.actions.compaction) for s in stored]


def main() -> None:
    report: Dict[str, Any] = {}
    shared = {"report": report, "run_turns": run_turns}
    exec(sys.argv[1], shared)
    import google.adk.runners  # noqa: F401

    import adk_compaction_backport as acb

    if len(sys.argv) > 2:
        exec(sys.argv[2], shared)

    status = acb.status()
    report["status"] = status.as_dict()
    report["ours"] = {f"{m}.{p}": ours(m, p) for m, p in targets(status)}
    print("PROBE " + json.dumps(report, default=str))


if __name__ == "__main__":
    main()
