"""A process that takes one session's cross-process lock and holds it.

``python _lock_holder.py SPEC SESSION_ID [APP USER [TURN]]``: SPEC names the
storage (see ``storage``); with TURN it holds that turn's claim instead (what a
process whose compaction of TURN is pending holds). Prints ``held`` (or ``not
held``) once it has tried, then holds until a line arrives on stdin (or stdin
closes), releases and prints ``released``. Killed with SIGKILL it never
releases: the database server or the kernel must. Imports no google-adk: the
lock needs only the service's ``db_engine.url`` (or ``_db_path``).
"""

from __future__ import annotations

import asyncio
import sys
from types import SimpleNamespace
from typing import Any

from adk_compaction_backport._process_locks import session_lock, turn_claim


class _AsyncEngine(SimpleNamespace):
    """Stands in for an AsyncEngine: only ``url`` and ``sync_engine`` are read."""

    sync_engine = None


def storage(spec: str) -> Any:
    """A stand-in session service: a SQLAlchemy URL, or ``file:PATH``."""
    if spec.startswith("file:"):
        return SimpleNamespace(_db_path=spec[5:])  # SqliteSessionService
    from sqlalchemy.engine import make_url

    url = make_url(spec)
    is_async = url.drivername.split("+")[-1] in ("asyncpg", "aiomysql", "aiosqlite")
    engine = _AsyncEngine(url=url) if is_async else SimpleNamespace(url=url)
    return SimpleNamespace(db_engine=engine)  # DatabaseSessionService


async def main(
    spec: str,
    session_id: str,
    app_name: str = "app",
    user_id: str = "user",
    turn: str = "",
) -> None:
    service = storage(spec)
    names = (service, app_name, user_id, session_id)
    lock = turn_claim(*names, turn) if turn else session_lock(*names, 5.0)
    async with lock as held:
        print("held" if held else "not held", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    print("released", flush=True)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:6]))
