"""Read a session as storage holds it now, at the cost of what is new.

A whole ``get_session`` parses every event of the session on the event loop
(about 0.1 ms an event: 0.4 s at 4,000 events), and the package's checks need
far less: is storage still the conversation the turn read, and what was stored
since (summaries, rewinds, other turns' events). Every release from 1.16.0
filters ``get_session`` by ``GetSessionConfig(after_timestamp=...)`` (events
with ``timestamp >=`` it, on ``DatabaseSessionService`` and
``SqliteSessionService`` alike), so the read asks only for the events from
``LOOKBACK`` seconds before the newest event the turn holds, and puts the
turn's older events in front: what a whole read returns, when storage still
holds them.

That is checked, not assumed: every event the turn holds from the cutoff on
must come back. The newest of them is ``LOOKBACK`` seconds past the cutoff, so
a session deleted and created again (other event ids), a service that filters
otherwise, or timestamps shifted by a time zone all show as a missing event,
and the read is made again in full. A turn that holds no events is read in
full too (there is nothing to read after).
"""

from __future__ import annotations

from operator import attrgetter
from typing import Any, Optional, Sequence

LOOKBACK = 10.0
"""Seconds before the turn's newest event the read starts. An event is stored
a moment after its timestamp is taken; one stored after the turn's read with a
timestamp more than this before the turn's newest event would be missed (an
append stuck that long: SQLite's busy wait is 5 s)."""
TOLERANCE = 1e-3
"""Stored timestamps come back rounded: an event this close to the cutoff may
fall on either side of it."""
_TIMESTAMP = attrgetter("timestamp")  # read in C: ``known`` is the whole session


def _config(after_timestamp: float) -> Any:
    """google-adk's ``GetSessionConfig``, or None where it cannot be made."""
    try:
        from google.adk.sessions.base_session_service import GetSessionConfig

        return GetSessionConfig(after_timestamp=after_timestamp)
    except Exception:  # a release or a stand-in without it: read in full
        return None


async def read_session(
    service: Any, app_name: str, user_id: str, session_id: str, known: Sequence[Any]
) -> Optional[Any]:
    """The session as storage holds it now (None: deleted), reading only what
    is new since ``known`` (the events a turn loaded and wrote, in order).

    Its events are ``known``'s older ones followed by the stored events from
    the cutoff on; its revision (``last_update_time``, the 1.28+ marker) and
    state are storage's, so a write through it is as current as through a
    whole read.
    """
    names = {"app_name": app_name, "user_id": user_id, "session_id": session_id}
    cutoff = max(map(_TIMESTAMP, known), default=0.0) - LOOKBACK
    config = _config(cutoff) if known else None
    if config is None:
        return await service.get_session(**names)
    recent = await service.get_session(**names, config=config)
    if recent is None:
        return None
    recent_ids = {event.id for event in recent.events}
    older = [event for event in known if event.id not in recent_ids]
    if max(map(_TIMESTAMP, older), default=cutoff) >= cutoff + TOLERANCE:
        # An event the turn holds is gone: another conversation, or a service
        # that filtered otherwise. The whole read decides.
        return await service.get_session(**names)
    return recent.model_copy(update={"events": older + list(recent.events)})
