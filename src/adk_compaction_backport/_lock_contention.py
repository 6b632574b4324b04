"""A turn's write that SQLite refused for lock contention is made again.

Many sessions on one SQLite file (one server, issue #22): a write waits for
SQLite's write lock at most the connection's busy timeout (5 s, Python's
default; neither session service changes it), then fails with ``database is
locked``. Writers hold that lock from their first statement to their commit,
each statement a round trip through aiosqlite's thread and the event loop,
which long sessions keep busy: measured there, every such failure was a
turn's first write statement after 5.1 - 6.5 s of waiting, never an
immediate one. SQLite rolled the write back (nothing of it is stored; the
services roll back or close their connection), and upstream's in-memory
bookkeeping before its commit is idempotent, so the same write is made
again, a bounded number of times. Anything else is not retried.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any, Awaitable, Callable, TypeVar

logger = logging.getLogger("adk_compaction_backport")

T = TypeVar("T")

ATTEMPTS = 4
"""Tries of one write, each waiting up to SQLite's busy timeout."""
PAUSE = 0.05
"""Seconds before a retry, times the attempt: the writers ahead go first."""
LOCKED_MESSAGE = "database is locked"


def is_lock_contention(error: BaseException) -> bool:
    """Whether ``error`` is SQLite's SQLITE_BUSY (another connection holds
    the lock), raised by ``sqlite3``/aiosqlite or wrapped by SQLAlchemy."""
    sqlite3 = sys.modules.get("sqlite3")  # not imported: not its error
    cause = getattr(error, "orig", None) or error  # SQLAlchemy's DBAPIError
    if sqlite3 is None or not isinstance(cause, sqlite3.OperationalError):
        return False
    name = getattr(cause, "sqlite_errorname", None)  # Python 3.11+
    if name is not None:
        return str(name).startswith("SQLITE_BUSY")
    return str(cause).startswith(LOCKED_MESSAGE)


async def retried_on_lock_contention(
    write: Callable[[], Awaitable[T]], session: Any
) -> T:
    """``write()``, made again while SQLite refuses it for lock contention."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return await write()
        except Exception as error:
            if not is_lock_contention(error):
                raise
            if attempt == ATTEMPTS:
                _gave_up(error, session)
                raise
            # Not the error's text: SQLAlchemy's holds the row's values.
            logger.warning(
                "a write of session %s waited past SQLite's busy timeout for "
                "the database's write lock (database is locked); making it "
                "again (attempt %d of %d)",
                getattr(session, "id", "?"),
                attempt + 1,
                ATTEMPTS,
            )
        await asyncio.sleep(PAUSE * attempt)
    raise AssertionError("unreachable")


def _gave_up(error: BaseException, session: Any) -> None:
    note = (
        f"adk_compaction_backport: SQLite refused this write {ATTEMPTS} times "
        "for lock contention (each after its busy timeout): more writers on "
        "one SQLite file than it serves in time; PostgreSQL or MySQL do not "
        "have one lock per database"
    )
    if hasattr(error, "add_note"):  # Python 3.11+
        error.add_note(note)
    logger.warning("session %s: %s", getattr(session, "id", "?"), note)
