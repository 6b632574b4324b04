"""Facts about compaction events that every release family shares.

A summary is stored when its summarizer returns, so it usually lands after the
events of the next turn; and stored timestamps come back rounded to
microseconds. Both break upstream code that assumes a summary sits right after
the events it covers, with exactly their timestamps.
"""

from __future__ import annotations

from operator import attrgetter
from typing import Any, List, Optional, Sequence

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


def summaries_in(events: Sequence[Any]) -> List[Any]:
    """The compaction events among ``events``, in order.

    A session holds thousands of events, and a Python step per event is most
    of a pass's cost: the attributes are read in C where every event has them.
    """
    try:
        found = map(_COMPACTION, events)
        return [
            event for event, compaction in zip(events, found) if compaction is not None
        ]
    except AttributeError:  # a stand-in, or actions stored as a dict (#3487)
        return [event for event in events if compaction_of(event) is not None]


def widened(event: Any, before: float = 0.0, after: float = TIMESTAMP_SLACK) -> Any:
    """A copy of a compaction event whose range is a little wider."""
    compaction = compaction_of(event)
    start = getattr(compaction, "start_timestamp", None)
    end = getattr(compaction, "end_timestamp", None)
    if not start or not end:
        return event
    wider = compaction.model_copy(
        update={"start_timestamp": start - before, "end_timestamp": end + after}
    )
    actions = event.actions.model_copy(update={"compaction": wider})
    return event.model_copy(update={"actions": actions})


def summaries_after_their_range(events: List[Any]) -> List[Any]:
    """The events with each summary moved to just after the events it covers.

    Other events keep their order. Ranges are widened by the slack on both
    sides, for timestamps read back from a database.
    """
    plain = [e for e in events if end_timestamp(e) is None]
    placed = list(plain)
    for summary in (e for e in events if end_timestamp(e) is not None):
        summary = widened(summary, before=TIMESTAMP_SLACK, after=TIMESTAMP_SLACK)
        end = end_timestamp(summary)
        position = len(placed)
        while position and (
            end_timestamp(placed[position - 1]) is None
            and placed[position - 1].timestamp > end
        ):
            position -= 1
        placed.insert(position, summary)
    return placed
