"""The sliding window's arithmetic, as pure functions of events.

Upstream's sliding-window compaction summarizes ``compaction_interval`` new
invocations at a time, counted after the newest summary. A compaction that
waited (for an earlier one in this process, or for another process) must cut
its window on the events its turn saw plus the newest summary that landed
since: this module says what that is, whether a summary can be due on it,
and which earlier turn one process would have compacted first. Nothing here
waits, reads storage or imports google-adk.
"""

from __future__ import annotations

from typing import Any, Dict, List, NamedTuple, Optional, Sequence

from adk_compaction_backport._compaction_events import (
    compaction_of,
    end_timestamp,
    widened,
)
from adk_compaction_backport._rewinds import live_events


class OwnSummary(NamedTuple):
    """The summary this process stored last for a session."""

    event: Any
    first_event_id: Optional[str]
    """The first event of the conversation it summarizes (its incarnation)."""


def sliding_interval(app: Any) -> Optional[int]:
    """The sliding window's interval, None where it does not decide alone
    (token-threshold compaction, anything unexpected)."""
    config = getattr(app, "events_compaction_config", None)
    interval = getattr(config, "compaction_interval", None)
    if getattr(config, "token_threshold", None) is not None or not isinstance(
        interval, int
    ):
        return None
    return interval


def new_invocations(events: Sequence[Any]) -> List[str]:
    """Invocations with events after the newest summary in ``events``, in order."""
    last_end = next(
        (end_timestamp(e) or 0.0 for e in reversed(events) if end_timestamp(e)), 0.0
    )
    new: Dict[str, None] = {}
    for event in events:
        if (
            event.invocation_id
            and compaction_of(event) is None
            and event.timestamp > last_end
        ):
            new[event.invocation_id] = None
    return list(new)


def may_be_due(app: Any, events: Sequence[Any]) -> bool:
    """False only when no sliding-window summary can be due on ``events``.

    Saves the lock and the read after most invocations: fewer new invocations
    than the interval since the last summary the turn saw (a summary another
    process stored can only leave fewer). Token-threshold compaction and
    anything unexpected: maybe.
    """
    if getattr(app, "events_compaction_config", None) is None:
        return False
    interval = sliding_interval(app)
    return interval is None or len(new_invocations(events)) >= interval


def earlier_due_turn(app: Any, events: Sequence[Any]) -> Optional[str]:
    """The first turn before the last one in ``events`` whose compaction is
    due and not landed: the turn one process would have compacted first."""
    interval = sliding_interval(app)
    new = new_invocations(events)
    if interval is None or interval < 1 or len(new) <= interval:
        return None
    return new[interval - 1]


def seconds_since_end(events: Sequence[Any], turn: str, now: float) -> float:
    """Seconds from the last event of invocation ``turn`` in ``events`` to ``now``."""
    ended = max((e.timestamp for e in events if e.invocation_id == turn), default=0.0)
    return now - ended


def turn_of(events: Sequence[Any]) -> str:
    """The invocation of the turn that ended with ``events``."""
    return next(
        (e.invocation_id for e in reversed(events) if compaction_of(e) is None), ""
    )


def landed_summaries(
    seen: Sequence[Any],
    own: Optional[OwnSummary] = None,
    stored: Optional[Sequence[Any]] = None,
) -> List[Any]:
    """Summaries stored since the turn read ``seen``, of the turn's incarnation:
    ``own`` (this process's last) and any in ``stored`` (storage read since)."""
    first = seen[0].id if seen else None
    found: List[Any] = []
    if own is not None and own.first_event_id in {e.id for e in seen}:
        found.append(own.event)
    if stored is not None and first is not None and any(e.id == first for e in stored):
        found.extend(
            e for e in live_events(list(stored)) if end_timestamp(e) is not None
        )
    return found


def window_events(
    seen: Sequence[Any],
    own: Optional[OwnSummary] = None,
    stored: Optional[Sequence[Any]] = None,
) -> List[Any]:
    """The live events the turn saw, plus the newest summary that landed after.

    Landed: stored by this process since (``own``) or, when storage was read
    (``stored``: its events), by any process. Rewound events are left out on
    every release: a summary of them would bring them back into the prompt
    (upstream leaves them out from 2.5). A summary that landed in another
    incarnation of the session (deleted and created again) is not this
    conversation's.
    """
    events = live_events(list(seen))
    seen_ids = {e.id for e in seen}
    newest_seen = max((end_timestamp(e) or 0.0 for e in events), default=0.0)
    landed = [
        summary
        for summary in landed_summaries(seen, own, stored)
        if summary.id not in seen_ids and (end_timestamp(summary) or 0.0) > newest_seen
    ]
    if landed:
        events.append(max(landed, key=lambda e: end_timestamp(e) or 0.0))
    return [widened(e) for e in events]
