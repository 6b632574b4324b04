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

from typing import Any, Dict, FrozenSet, List, NamedTuple, Optional, Sequence

from adk_compaction_backport._compaction_events import (
    compaction_of,
    end_timestamp,
    summaries_in,
    widened,
)
from adk_compaction_backport._rewinds import live_events, rewound_before


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
    # The timestamp first: on a long session most events are older than the
    # newest summary, and the check costs no call.
    new: Dict[str, None] = {}
    for event in events:
        if (
            event.timestamp > last_end
            and event.invocation_id
            and compaction_of(event) is None
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


class SeenWindow:
    """What a compaction's window takes from the events its turn saw.

    Those events do not change while the compaction waits, so their pass (the
    session's whole length) is made once, and each cut of the window
    (``window_from``) costs only what landed since.
    """

    __slots__ = ("_ids", "events", "first_id", "newest_end", "rewinds", "seen")

    def __init__(self, seen: Sequence[Any]) -> None:
        self.seen = seen
        live = live_events(list(seen))
        summaries = summaries_in(live)
        marked = {id(e) for e in summaries}
        self.events: List[Any] = (
            [widened(e) if id(e) in marked else e for e in live] if marked else live
        )
        """The live events, compaction ranges widened (``_compaction_events``)."""
        self.first_id: Optional[str] = seen[0].id if seen else None
        """The first event seen: its incarnation of the session."""
        self.newest_end = max((end_timestamp(e) or 0.0 for e in summaries), default=0.0)
        """The newest end of a live summary seen (0.0: none)."""
        self.rewinds = len(live) != len(seen)
        """Whether a rewind is among the events seen."""
        self._ids: Optional[FrozenSet[str]] = None

    @property
    def ids(self) -> FrozenSet[str]:
        """Every event seen, rewound or not (made when a cut needs it: a turn
        with nothing landed to look at does not)."""
        if self._ids is None:
            self._ids = frozenset(e.id for e in self.seen)
        return self._ids


def landed_summaries(
    seen: SeenWindow,
    own: Optional[OwnSummary] = None,
    stored: Optional[Sequence[Any]] = None,
) -> List[Any]:
    """Summaries stored since the turn read ``seen``, of the turn's incarnation:
    ``own`` (this process's last) and any in ``stored`` (storage read since)."""
    found: List[Any] = []
    if own is not None and own.first_event_id in seen.ids:
        found.append(own.event)
    first = seen.first_id
    if stored is None or first is None or not any(e.id == first for e in stored):
        return found
    new = [e for e in stored if e.id not in seen.ids]
    if seen.rewinds or any(rewound_before(e) for e in new):
        # A rewind may have removed a summary: apply them all.
        found.extend(summaries_in(live_events(list(stored))))
    else:
        found.extend(summaries_in(new))
    return found


def window_from(
    seen: SeenWindow,
    own: Optional[OwnSummary] = None,
    stored: Optional[Sequence[Any]] = None,
) -> List[Any]:
    """``window_events`` on the pass over the turn's events made once."""
    events = list(seen.events)
    if own is None and stored is None:
        return events
    landed = [
        summary
        for summary in landed_summaries(seen, own, stored)
        if summary.id not in seen.ids
        and (end_timestamp(summary) or 0.0) > seen.newest_end
    ]
    if landed:
        events.append(widened(max(landed, key=lambda e: end_timestamp(e) or 0.0)))
    return events


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
    return window_from(SeenWindow(seen), own, stored)
