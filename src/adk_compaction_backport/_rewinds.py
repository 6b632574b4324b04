"""Which stored events are still part of the conversation after rewinds.

``Runner.rewind_async`` removes nothing from storage: it appends an event
whose ``actions.rewind_before_invocation_id`` names an invocation, and every
event from that invocation's first one up to the rewind event itself stops
counting. Prompt building applies this on every release; compaction applies
it only on late 2.x releases, so earlier ones summarize rewound turns
(and a summary of them would bring them back into the prompt).
"""

from __future__ import annotations

from operator import attrgetter
from typing import Any, Dict, List, Optional

_REWIND = attrgetter("actions.rewind_before_invocation_id")


def rewound_before(event: Any) -> Optional[str]:
    """The invocation id a rewind event removes from, or None for other events."""
    actions = getattr(event, "actions", None)
    return getattr(actions, "rewind_before_invocation_id", None) or None


def _any_rewind(events: List[Any]) -> bool:
    """Whether a rewind is among ``events``. Most sessions hold none, and on a
    long one a Python step per event is most of the check's cost: the
    attribute is read in C where every event has it."""
    try:
        return any(map(_REWIND, events))
    except AttributeError:  # releases without rewinds, stand-ins
        return any(rewound_before(event) for event in events)


def live_events(events: List[Any]) -> List[Any]:
    """``events`` without rewind events and the events they removed, in order."""
    if not _any_rewind(events):
        return list(events)
    first_of: Dict[str, int] = {}
    for index, event in enumerate(events):
        if event.invocation_id:
            first_of.setdefault(event.invocation_id, index)
    live: List[Any] = []
    index = len(events) - 1
    while index >= 0:
        event = events[index]
        target = rewound_before(event)
        if target is None:
            live.append(event)
        else:
            start = first_of.get(target)
            if start is not None and start < index:
                index = start  # skip back over everything the rewind removed
        index -= 1
    live.reverse()
    return live
