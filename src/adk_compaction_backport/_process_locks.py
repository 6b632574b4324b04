"""One compaction per session across processes sharing one database.

``async with session_lock(identity, limit) as held`` (``identity``: a
``_session_identity.SessionIdentity``, which resolves the backend once) takes
a lock that every process using the same storage sees (see
``_lock_backends``: PostgreSQL advisory locks, MySQL/MariaDB named locks, a
byte-range lock beside a SQLite file). ``held`` is True when it was taken,
False when it was tried and not taken, None when there is nothing to take
(storage in memory, an unknown service, or turned off with
``ADK_COMPACTION_BACKPORT_CROSS_PROCESS=0``). ``on_wait`` is called once if
another process holds the lock (the stream of the turn then ends without
waiting for this compaction).

``turn_claim`` marks, for the other processes, that the compaction of one
turn is pending (a second lock, keyed by the session and the turn's
invocation, held from the turn's end until its compaction is done), and
``claimed_elsewhere`` asks whether another process holds such a mark. A later
turn's compaction that finds an earlier due turn claimed waits for it, so the
windows are cut where one process would cut them; a claim that died with its
process (or was never taken) holds nothing up.

Never blocks forever: a process that cannot take part (no package, another
version) may hold the session's summary write without the lock, so waiting is
bounded by the compaction time limit, after which the compaction goes on
without it (a warning). A failing backend (database down, connection dropped)
is logged once and the compaction goes on without the lock: the checks before
every summary write (``_summary_writes``) stay the last line of defence.

What this process holds (locks, claims, whether a failure was logged) is kept
in the backend object (``_lock_backends.LockBackend``), one per storage.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Any, Callable, Optional

logger = logging.getLogger("adk_compaction_backport")

CROSS_PROCESS_VARIABLE = "ADK_COMPACTION_BACKPORT_CROSS_PROCESS"
NAMESPACE = b"adk-compaction-backport/session-lock/v1"
CLAIM_NAMESPACE = b"adk-compaction-backport/turn-claim/v1"
FIRST_POLL = 0.02
LAST_POLL = 0.25


def cross_process_enabled() -> bool:
    """Off only when the variable says so ("0", "false", "no", "off")."""
    value = os.environ.get(CROSS_PROCESS_VARIABLE, "").strip().lower()
    return value not in ("0", "false", "no", "off")


def _digest(
    app_name: str, user_id: str, session_id: str, *more: str, space: bytes = NAMESPACE
) -> bytes:
    import hashlib

    parts = "\0".join((app_name, user_id, session_id, *more))
    encoded = parts.encode("utf-8", "replace")
    return hashlib.blake2b(space + b"\0" + encoded, digest_size=32).digest()


def lock_backend(storage: Any) -> Any:
    """This process's lock backend for ``storage`` (a service that stores
    sessions itself), or None (off, or nothing shared between processes)."""
    if not cross_process_enabled():
        return None
    try:
        from adk_compaction_backport._lock_backends import locks_for

        return locks_for(storage)
    except Exception:
        logger.debug("no cross-process lock for this service", exc_info=True)
        return None


async def _pause(pause: float, deadline: float) -> Optional[float]:
    """One pause between polls, cut at ``deadline`` (``time.monotonic()``):
    the next, longer pause (up to ``LAST_POLL``), or None once it has passed."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        return None
    await asyncio.sleep(min(pause, remaining))
    return min(pause * 1.5, LAST_POLL)


def _claim_key(identity: Any, turn: str) -> Any:
    """The backend's key for the claim of ``turn``'s compaction."""
    digest = _digest(*identity.names, turn, space=CLAIM_NAMESPACE)
    return identity.locks.key_of(digest)


class session_lock:
    """The cross-process lock of one session, as an async context manager."""

    def __init__(
        self,
        identity: Any,
        wait_limit: float,
        on_wait: Optional[Callable[[], None]] = None,
        space: bytes = NAMESPACE,
    ) -> None:
        self._on_wait = on_wait
        self._space = space
        self._identity = identity
        self._wait_limit = wait_limit
        self._backend: Any = None
        self._held: Any = None  # the key, while held

    async def __aenter__(self) -> Optional[bool]:
        self._backend = self._identity.locks
        if self._backend is None:
            return None
        key = self._backend.key_of(_digest(*self._identity.names, space=self._space))
        try:
            if await self._acquire(key):
                self._held = key
                return True
        except Exception as error:
            self._failed(error)
            return False
        logger.warning(
            "compaction of session %s waited %s s for another process's "
            "compaction of it and goes on without the cross-process lock (%s "
            "sets the limit)",
            self._identity.session_id,
            self._wait_limit,
            "ADK_COMPACTION_BACKPORT_TIMEOUT",
        )
        return False

    async def __aexit__(self, *exc_info: Any) -> None:
        key, self._held = self._held, None
        if key is None:
            return
        backend = self._backend
        with backend.guard:
            entry = backend.held[key]
            entry[0] -= 1
            if entry[0] > 0:
                return
            del backend.held[key]
        try:
            await self._backend.unlock(entry[1])
        except Exception:  # the lock died with its connection: nothing to undo
            logger.debug("cross-process unlock failed", exc_info=True)

    async def _acquire(self, key: Any) -> bool:
        backend = self._backend
        deadline = time.monotonic() + self._wait_limit
        pause: Optional[float] = FIRST_POLL
        while True:
            with backend.guard:
                entry = backend.held.get(key)
                if entry is not None:  # held in this process (a colliding key)
                    entry[0] += 1
                    return True
            token = await backend.try_lock(key)
            with backend.guard:
                backend.failing = False  # it answered
                entry = backend.held.get(key) if token is not None else None
                if token is not None and entry is None:
                    backend.held[key] = [1, token]
                    return True
                if entry is not None:
                    entry[0] += 1
            if token is not None:
                # Another holder in this process took it meanwhile: ours is one
                # more re-entrant count (databases) or the very same lock (files).
                if backend.reentrant:
                    await backend.unlock(token)
                return True
            if self._on_wait is not None:
                self._on_wait()  # another process holds it: we will wait
                self._on_wait = None
            pause = await _pause(pause, deadline)
            if pause is None:
                return False

    def _failed(self, error: BaseException) -> None:
        """Log a failing backend once until it works again."""
        with self._backend.guard:
            logged, self._backend.failing = self._backend.failing, True
        if logged:
            logger.debug("cross-process lock still failing: %r", error)
            return
        logger.warning(
            "the cross-process compaction lock is unavailable (%r); compactions "
            "go on without it until it works again (summaries are still checked "
            "against storage before they are written)",
            error,
        )


class turn_claim:
    """Marks a turn's compaction as pending, for the other processes.

    Taken without waiting (nobody else claims this turn); if it cannot be
    taken, nothing is marked and a later turn's compaction does not wait for
    this one: the ranges may then be cut elsewhere, each still summarized once.
    """

    def __init__(self, identity: Any, turn: str) -> None:
        self._identity = identity
        self._turn = turn
        self._token: Any = None
        self._backend: Any = None
        self._held: Any = None  # the key, while held

    async def __aenter__(self) -> bool:
        self._backend = self._identity.locks
        if self._backend is None:
            return False
        key = _claim_key(self._identity, self._turn)
        try:
            self._token = await self._backend.try_lock(key)
        except Exception:
            logger.debug("claiming a turn's compaction failed", exc_info=True)
            return False
        if self._token is None:
            return False
        self._held = key
        with self._backend.guard:
            self._backend.claims.add(key)
        return True

    async def __aexit__(self, *exc_info: Any) -> None:
        if self._held is None:
            return
        with self._backend.guard:
            self._backend.claims.discard(self._held)
        try:
            await self._backend.unlock(self._token)
        except Exception:  # it died with its connection
            logger.debug("releasing a turn's claim failed", exc_info=True)


async def claimed_elsewhere(identity: Any, turn: str) -> bool:
    """Whether another process holds the claim of ``turn``'s compaction."""
    backend = identity.locks
    if backend is None:
        return False
    key = _claim_key(identity, turn)
    with backend.guard:
        if key in backend.claims:
            return False
    try:
        return await backend.held_elsewhere(key)
    except Exception:
        logger.debug("asking for a turn's claim failed", exc_info=True)
        return False


async def until_claimed_is(
    held: bool, identity: Any, turn: str, deadline: float
) -> None:
    """Wait (polling) until ``turn``'s claim is held elsewhere (or is gone),
    or ``deadline`` (``time.monotonic()``) passes."""
    pause: Optional[float] = FIRST_POLL
    while await claimed_elsewhere(identity, turn) != held:
        pause = await _pause(pause, deadline)
        if pause is None:
            return
