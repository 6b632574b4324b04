"""One compaction per session across processes sharing one database.

``async with session_lock(service, app, user, session_id, limit) as held``
takes a lock that every process using the same storage sees (see
``_lock_backends``: PostgreSQL advisory locks, MySQL/MariaDB named locks, a
byte-range lock beside a SQLite file). ``held`` is True when it was taken,
False when it was tried and not taken, None when there is nothing to take
(storage in memory, an unknown service, or turned off with
``ADK_COMPACTION_BACKPORT_CROSS_PROCESS=0``). ``on_wait`` is called once if
another process holds the lock (the stream of the turn then ends without
waiting for this compaction).

Never blocks forever: a process that cannot take part (no package, another
version) may hold the session's summary write without the lock, so waiting is
bounded by the compaction time limit, after which the compaction goes on
without it (a warning). A failing backend (database down, connection dropped)
is logged once and the compaction goes on without the lock: the checks before
every summary write (``_summary_writes``) stay the last line of defence.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from typing import Any, Callable, Dict, Optional, Tuple

logger = logging.getLogger("adk_compaction_backport")

CROSS_PROCESS_VARIABLE = "ADK_COMPACTION_BACKPORT_CROSS_PROCESS"
NAMESPACE = b"adk-compaction-backport/session-lock/v1"
FIRST_POLL = 0.02
LAST_POLL = 0.25


def cross_process_enabled() -> bool:
    """Off only when the variable says so ("0", "false", "no", "off")."""
    value = os.environ.get(CROSS_PROCESS_VARIABLE, "").strip().lower()
    return value not in ("0", "false", "no", "off")


def _digest(app_name: str, user_id: str, session_id: str) -> bytes:
    import hashlib

    parts = "\0".join((app_name, user_id, session_id)).encode("utf-8", "replace")
    return hashlib.blake2b(NAMESPACE + b"\0" + parts, digest_size=32).digest()


# Locks this process holds: (backend, key) -> [holders, token]. Two sessions
# whose keys collide share the lock; a database lock is taken once per process
# (PostgreSQL and MySQL locks are re-entrant per connection, byte-range locks
# are not counted at all), and released when the last holder leaves.
_HELD: Dict[Tuple[int, Any], list] = {}
_HELD_GUARD = threading.Lock()
_FAILING: Dict[int, bool] = {}


class session_lock:
    """The cross-process lock of one session, as an async context manager."""

    def __init__(
        self,
        service: Any,
        app_name: str,
        user_id: str,
        session_id: str,
        wait_limit: float,
        on_wait: Optional[Callable[[], None]] = None,
    ) -> None:
        self._on_wait = on_wait
        self._service = service
        self._names = (app_name, user_id, session_id)
        self._wait_limit = wait_limit
        self._backend: Any = None
        self._held: Optional[Tuple[int, Any]] = None

    async def __aenter__(self) -> Optional[bool]:
        if not cross_process_enabled():
            return None
        try:
            from adk_compaction_backport._lock_backends import locks_for

            self._backend = locks_for(self._service)
        except Exception:
            logger.debug("no cross-process lock for this service", exc_info=True)
            return None
        if self._backend is None:
            return None
        key = self._backend.key_of(_digest(*self._names))
        held_key = (id(self._backend), key)
        try:
            if await self._acquire(held_key, key):
                self._held = held_key
                return True
        except Exception as error:
            self._failed(error)
            return False
        logger.warning(
            "compaction of session %s waited %s s for another process's "
            "compaction of it and goes on without the cross-process lock (%s "
            "sets the limit)",
            self._names[2],
            self._wait_limit,
            "ADK_COMPACTION_BACKPORT_TIMEOUT",
        )
        return False

    async def __aexit__(self, *exc_info: Any) -> None:
        held_key, self._held = self._held, None
        if held_key is None:
            return
        with _HELD_GUARD:
            entry = _HELD[held_key]
            entry[0] -= 1
            if entry[0] > 0:
                return
            del _HELD[held_key]
        try:
            await self._backend.unlock(entry[1])
        except Exception:  # the lock died with its connection: nothing to undo
            logger.debug("cross-process unlock failed", exc_info=True)

    async def _acquire(self, held_key: Tuple[int, Any], key: Any) -> bool:
        deadline = time.monotonic() + self._wait_limit
        pause = FIRST_POLL
        while True:
            with _HELD_GUARD:
                entry = _HELD.get(held_key)
                if entry is not None:  # held in this process (a colliding key)
                    entry[0] += 1
                    return True
            token = await self._backend.try_lock(key)
            if token is not None:
                _FAILING.pop(id(self._backend), None)
                with _HELD_GUARD:
                    entry = _HELD.get(held_key)
                    if entry is None:
                        _HELD[held_key] = [1, token]
                        return True
                    entry[0] += 1
                # Another holder in this process took it meanwhile: ours is one
                # more re-entrant count (databases) or the very same lock (files).
                if self._backend.reentrant:
                    await self._backend.unlock(token)
                return True
            _FAILING.pop(id(self._backend), None)
            if self._on_wait is not None:
                self._on_wait()  # another process holds it: we will wait
                self._on_wait = None
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            await asyncio.sleep(min(pause, remaining))
            pause = min(pause * 1.5, LAST_POLL)

    def _failed(self, error: BaseException) -> None:
        """Log a failing backend once until it works again."""
        if _FAILING.get(id(self._backend)):
            logger.debug("cross-process lock still failing: %r", error)
            return
        _FAILING[id(self._backend)] = True
        logger.warning(
            "the cross-process compaction lock is unavailable (%r); compactions "
            "go on without it until it works again (summaries are still checked "
            "against storage before they are written)",
            error,
        )
