"""A process that takes one session's cross-process lock and holds it.

``python _lock_holder.py SPEC SESSION_ID [APP USER [TURN]]``: SPEC names the
storage (see ``storage``); with TURN it holds that turn's claim instead (what a
process whose compaction of TURN is pending holds). Prints ``held`` (or ``not
held``) once it has tried, then holds until a line arrives on stdin (or stdin
closes), releases and prints ``released``. Killed with SIGKILL it never
releases: the database server or the kernel must. Imports no google-adk: the
lock needs only the service's ``db_engine`` (or ``_db_path``).
"""

from __future__ import annotations

import asyncio
import sys
from types import SimpleNamespace
from typing import Any

from adk_compaction_backport._process_locks import session_lock, turn_claim
from adk_compaction_backport._session_identity import SessionIdentity

ASYNC_DRIVERS = ("asyncpg", "aiomysql", "aiosqlite")


def storage(spec: str, **engine_arguments: Any) -> Any:
    """A stand-in session service: a SQLAlchemy URL, or ``file:PATH``.

    A URL gets a real engine (no connection is made until the lock needs one)
    with ``engine_arguments``, as ``DatabaseSessionService(url, **kwargs)``
    builds it.
    """
    if spec.startswith("file:"):
        return SimpleNamespace(_db_path=spec[5:])  # SqliteSessionService
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url
    from sqlalchemy.ext.asyncio import create_async_engine

    is_async = make_url(spec).drivername.split("+")[-1] in ASYNC_DRIVERS
    create = create_async_engine if is_async else create_engine
    return SimpleNamespace(db_engine=create(spec, **engine_arguments))


async def main(
    spec: str,
    session_id: str,
    app_name: str = "app",
    user_id: str = "user",
    turn: str = "",
) -> None:
    identity = SessionIdentity(storage(spec), app_name, user_id, session_id)
    lock = turn_claim(identity, turn) if turn else session_lock(identity, 5.0)
    async with lock as held:
        print("held" if held else "not held", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    print("released", flush=True)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:6]))
