"""Facts about compaction events that every release family shares.

A summary is stored when its summarizer returns, so it usually lands after the
events of the next turn; and stored timestamps come back rounded to
microseconds. Both break upstream code that assumes a summary sits right after
the events it covers, with exactly their timestamps.
"""

from __future__ import annotations

from bisect import bisect_right
from operator import attrgetter
from typing import Any, Dict, List, Optional, Sequence, Tuple

# Stored event timestamps come back rounded to microseconds (plus float error),
# so the last compacted event can look newer than the summary's exact
# ``end_timestamp`` and the first one older than its ``start_timestamp``. Two
# microseconds absorb that; events of different invocations are further apart.
TIMESTAMP_SLACK = 2e-6
_COMPACTION = attrgetter("actions.compaction")


def compaction_of(event: Any) -> Any:
    actions = getattr(event, "actions", None)
    return getattr(actions, "compaction", None) if actions is not None else None


def end_timestamp(event: Any) -> Optional[float]:
    return getattr(compaction_of(event), "end_timestamp", None)


def compactions_of(events: Sequence[Any]) -> List[Any]:
    """Each event's compaction, or None, in order: one pass read in C where
    every event has ``actions`` (a session holds thousands of events, and a
    Python step per event is most of a pass's cost)."""
    try:
        return list(map(_COMPACTION, events))
    except AttributeError:  # a stand-in, or actions stored as a dict (#3487)
        return [compaction_of(event) for event in events]


def summaries_in(events: Sequence[Any]) -> List[Any]:
    """The compaction events among ``events``, in order."""
    return [e for e, c in zip(events, compactions_of(events)) if c is not None]


WIDENED_KEPT = 4096
"""Widened copies remembered (``widened``); forgotten all at once past it."""
_widened: Dict[Tuple[Any, ...], Any] = {}


def widened(event: Any, before: float = 0.0, after: float = TIMESTAMP_SLACK) -> Any:
    """A copy of a compaction event whose range is a little wider.

    Remembered by the event's id, time and range: a long session holds
    hundreds of summaries, every turn reads them afresh from storage, and a
    stored event never changes, so each is copied once, not on every turn
    (three model copies apiece).
    """
    compaction = compaction_of(event)
    start = getattr(compaction, "start_timestamp", None)
    end = getattr(compaction, "end_timestamp", None)
    if not start or not end:
        return event
    event_id = getattr(event, "id", None)
    key = (event_id, getattr(event, "timestamp", None), start, end, before, after)
    copy = _widened.get(key) if event_id else None
    if copy is not None:
        return copy
    wider = compaction.model_copy(
        update={"start_timestamp": start - before, "end_timestamp": end + after}
    )
    actions = event.actions.model_copy(update={"compaction": wider})
    copy = event.model_copy(update={"actions": actions})
    if event_id:
        if len(_widened) >= WIDENED_KEPT:
            _widened.clear()
        _widened[key] = copy
    return copy


def summaries_after_their_range(events: List[Any]) -> List[Any]:
    """The events with each summary moved to just after the events it covers.

    Other events keep their order. Ranges are widened by the slack on both
    sides, for timestamps read back from a database. A summary goes after the
    last other event not newer than its end, and never before a summary that
    came earlier in ``events``. One pass and a binary search per summary: a
    long session holds hundreds of summaries, and this runs on every model
    call.
    """
    plain = [e for e in events if end_timestamp(e) is None]
    # Newest timestamp a suffix of ``plain`` goes down to: non-decreasing, so
    # the slot after the last event not newer than ``end`` is a bisection.
    lowest_from: List[float] = []
    lowest = float("inf")
    for event in reversed(plain):
        lowest = min(lowest, event.timestamp)
        lowest_from.append(lowest)
    lowest_from.reverse()
    slots: List[List[Any]] = [[] for _ in range(len(plain) + 1)]
    slot = 0
    for summary in (e for e in events if end_timestamp(e) is not None):
        summary = widened(summary, before=TIMESTAMP_SLACK, after=TIMESTAMP_SLACK)
        slot = max(slot, bisect_right(lowest_from, end_timestamp(summary)))
        slots[slot].append(summary)
    placed = list(slots[0])
    for event, after in zip(plain, slots[1:]):
        placed.append(event)
        placed.extend(after)
    return placed
