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

from functools import partial
from itertools import compress
from operator import attrgetter, is_, le
from typing import Any, List, Optional, Sequence

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
    service: Any,
    app_name: str,
    user_id: str,
    session_id: str,
    known: Sequence[Any],
    timestamps: Optional[List[float]] = None,
) -> Optional[Any]:
    """The session as storage holds it now (None: deleted), reading only what
    is new since ``known`` (the events a turn loaded and wrote, in order).

    Its events are ``known``'s older ones followed by the stored events from
    the cutoff on; its revision (``last_update_time``, the 1.28+ marker) and
    state are storage's, so a write through it is as current as through a
    whole read. ``timestamps``: ``known``'s, when the caller has read them.
    """
    names = {"app_name": app_name, "user_id": user_id, "session_id": session_id}
    if timestamps is None or len(timestamps) != len(known):
        timestamps = list(map(_TIMESTAMP, known))
    cutoff = max(timestamps, default=0.0) - LOOKBACK
    config = _config(cutoff) if known else None
    if config is None:
        return await service.get_session(**names)
    recent = await service.get_session(**names, config=config)
    if recent is None:
        return None
    older = _older_events(known, timestamps, cutoff, recent.events)
    if older is None:
        # An event the turn holds is gone: another conversation, or a service
        # that filtered otherwise. The whole read decides.
        return await service.get_session(**names)
    return recent.model_copy(update={"events": older + list(recent.events)})


def _older_events(
    known: Sequence[Any], timestamps: List[float], cutoff: float, recent: Sequence[Any]
) -> Optional[List[Any]]:
    """``known``'s events that ``recent`` (storage's from ``cutoff`` on) does
    not hold, in order; None if one of them is not older than the cutoff.

    An event more than ``TOLERANCE`` older than the cutoff cannot be among
    ``recent``: only the few from there on are looked up by id, and the rest
    are taken as they are (slices, no step per event).
    """
    low = cutoff - TOLERANCE
    near = list(
        compress(range(len(timestamps)), map(partial(le, low), timestamps))
    )  # indexes of the events from ``low`` on: the last moments of the turn
    recent_ids = {event.id for event in recent}
    again = [index for index in near if known[index].id in recent_ids]
    again_set = set(again)
    if any(
        timestamps[index] >= cutoff + TOLERANCE
        for index in near
        if index not in again_set
    ):
        return None
    older: List[Any] = []
    start = 0
    for index in again:
        older.extend(known[start:index])
        start = index + 1
    older.extend(known[start:])
    return older


def shared_prefix(events: Sequence[Any], known: Sequence[Any]) -> int:
    """How many of ``events`` lead with the very objects of ``known``, in order.

    A read here returns the turn's older events as those objects: what lies
    past them is what a check has to look at. Compared in C, without reading
    the events.
    """
    same = list(map(is_, events, known))
    try:
        return same.index(False)
    except ValueError:
        return len(same)
