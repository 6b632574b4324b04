"""A rewind and a summary of one session are written one after the other.

A rewind removes the events from its target invocation's first one up to the
rewind event itself, in storage order, which is timestamp order, not commit
order. ``Runner.rewind_async`` stamps its event when it makes it, before its
write; a summary made a moment later but stored first then sorts after the
rewind, still counts, and quotes the undone turn (issue #24). So:

* within a process, a summary's read-check-write and a rewind's write never
  interleave (``REWIND_FENCE``): a rewind stored before the summary's read is
  seen by its check (the summary is dropped), one stored after its write
  comes after it;
* across processes the same, by a cross-process lock of its own per session
  (``_process_locks``, another namespace than the compaction's), held as
  briefly: on SQLite a summary and a rewind from two processes both pass
  upstream's stale check when one commits between the other's check and its
  insert (nothing locks the session there between the two, unlike
  PostgreSQL's ``FOR UPDATE``; ``tests/test_cross_process_rewinds.py``
  stages it);
* a rewind written after summaries landed since its read is stamped again
  (``stamped_after``), so it sorts after them and removes them with the turn.

Without the fence, 1.24 - 1.27 (``DatabaseSessionService`` reloads a stale
session and writes anyway) stored a summary whose check ran just before a
rewind landed, and two processes on SQLite did on every release. 1.17 - 1.18
(a summary does not move ``update_time``: a rewind is never stale because of
one) kept a summary made after the rewind's stamp and stored first.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any, AsyncIterator, Dict, Hashable, Sequence, Tuple

from adk_compaction_backport._catch_up import is_plain_summary
from adk_compaction_backport._process_locks import session_lock

FENCE_NAMESPACE = b"adk-compaction-backport/rewind-fence/v1"
FENCE_WAIT = 5.0
"""Seconds a write waits for another process's fenced write (a summary's
check and write, or a rewind's write: milliseconds each) before it goes on."""


class RewindFence:
    """Per session and event loop, one lock; nothing kept while unused."""

    def __init__(self) -> None:
        self._locks: Dict[Tuple[Hashable, int], Tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def held(self, key: Hashable) -> AsyncIterator[None]:
        slot = (key, id(asyncio.get_running_loop()))
        lock, users = self._locks.get(slot, (None, 0))
        if lock is None:
            lock = asyncio.Lock()
        self._locks[slot] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[slot]
            if users <= 1:
                del self._locks[slot]
            else:
                self._locks[slot] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)


REWIND_FENCE = RewindFence()


@contextlib.asynccontextmanager
async def fenced(identity: Any) -> AsyncIterator[None]:
    """Hold the session's fence (``identity``: a ``SessionIdentity``) in this
    process and across processes."""
    across = session_lock(identity, FENCE_WAIT, space=FENCE_NAMESPACE)
    async with REWIND_FENCE.held(identity.key), across:
        yield


def stamped_after(event: Any, known: Sequence[Any], stored: Sequence[Any]) -> bool:
    """Stamp the rewind ``event`` now if a summary stored since its read
    (``stored`` minus ``known``) would sort after it; True if it did.

    Only when nothing but plain summaries landed: another turn's events are a
    conflict, left to upstream as they are (a later stamp would remove them).
    """
    known_ids = {e.id for e in known}
    newer = [e for e in stored if e.id not in known_ids and e.id != event.id]
    if not newer or not all(is_plain_summary(e) for e in newer):
        return False
    if max(e.timestamp for e in newer) < event.timestamp:
        return False
    event.timestamp = max(time.time(), *(e.timestamp for e in newer)) + 1e-6
    return True
