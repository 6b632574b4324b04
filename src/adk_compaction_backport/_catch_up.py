"""Bring a turn's ``Session`` level with storage when only summaries moved it.

A summary carries no state and covers invocations that had already ended, so
a turn that read the session before a summary landed has not missed anything
it could conflict with: it takes the newer summaries, the stored state and the
storage revision, and its write is retried unchanged. Anything else that moved
storage (another turn's events, a summary that carries a state or artifact
delta, events it no longer finds) is a real conflict and stays an error
(google/adk-python#4751 shows what merging those breaks).

The rule (``events_after_catch_up``) is a pure function of the turn's events
and the newer stored events; ``caught_up_with_summaries`` is the one read.
"""

from __future__ import annotations

from typing import Any, List, Optional, Sequence, Tuple

from adk_compaction_backport._compaction_events import compaction_of
from adk_compaction_backport._incremental_reads import read_session
from adk_compaction_backport._revision_probe import REVISION_ATTRIBUTES


def is_plain_summary(event: Any) -> bool:
    """A summary that changes nothing but the prompt: no state, no artifact."""
    actions = getattr(event, "actions", None)
    return (
        compaction_of(event) is not None
        and not getattr(actions, "state_delta", None)
        and not getattr(actions, "artifact_delta", None)
    )


def storage_order(event: Any) -> Tuple[float, str]:
    """The order session services return events in: timestamp, then id."""
    return (event.timestamp, event.id)


def events_after_catch_up(
    turn_events: Sequence[Any], newer_stored: Sequence[Any]
) -> Optional[List[Any]]:
    """The turn's events with the newer summaries, in storage's order.

    ``newer_stored`` may repeat events the turn has (they are kept once).
    None when a newer stored event is not a plain summary: a conflict.
    """
    known = {event.id for event in turn_events}
    newer = [event for event in newer_stored if event.id not in known]
    if not all(is_plain_summary(event) for event in newer):
        return None
    return sorted([*turn_events, *newer], key=storage_order)


def put_in_storage_order(session: Any) -> None:
    """Reorders a caught-up session after its retried write was appended:
    that event may be older than a summary the turn took."""
    session.events.sort(key=storage_order)


async def caught_up_with_summaries(service: Any, session: Any) -> bool:
    """Whether ``session`` was brought up to date (only summaries were newer)."""
    fresh = await read_session(
        service, session.app_name, session.user_id, session.id, session.events
    )
    if fresh is None:
        return False
    known = {event.id for event in session.events}
    if not known <= {event.id for event in fresh.events}:
        return False  # storage lost events this turn saw: not ours to paper over
    events = events_after_catch_up(session.events, fresh.events)
    if events is None:
        return False  # another turn wrote: upstream's error stands
    session.events[:] = events
    session.state.update(fresh.state)
    for name in REVISION_ATTRIBUTES:
        if hasattr(fresh, name):
            setattr(session, name, getattr(fresh, name))
    return True
