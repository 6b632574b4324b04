"""Bring a turn's ``Session`` level with storage when only summaries moved it.

A summary carries no state and covers invocations that had already ended, so
a turn that read the session before a summary landed has not missed anything
it could conflict with: it takes the newer summaries and the storage revision,
and its write is retried unchanged. Anything else that moved storage (another
turn's events, events it no longer finds) is a real conflict and stays an
error (google/adk-python#4751 shows what merging those breaks).
"""

from __future__ import annotations

from typing import Any

from adk_compaction_backport._compaction_events import compaction_of
from adk_compaction_backport._incremental_reads import read_session

# Where a loaded ``Session`` keeps the storage revision it was read at:
# the update time (every release) and the exact revision marker (1.28+).
REVISION_ATTRIBUTES = ("last_update_time", "_storage_update_marker")


async def caught_up_with_summaries(service: Any, session: Any) -> bool:
    """Whether ``session`` was brought up to date (only summaries were newer)."""
    fresh = await read_session(
        service, session.app_name, session.user_id, session.id, session.events
    )
    if fresh is None:
        return False
    known = {event.id for event in session.events}
    stored = {event.id for event in fresh.events}
    if not known <= stored:
        return False  # storage lost events this turn saw: not ours to paper over
    newer = [event for event in fresh.events if event.id not in known]
    if any(compaction_of(event) is None for event in newer):
        return False  # another turn wrote: upstream's error stands
    session.events.extend(newer)
    for name in REVISION_ATTRIBUTES:
        if hasattr(fresh, name):
            setattr(session, name, getattr(fresh, name))
    return True
