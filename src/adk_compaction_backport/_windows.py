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

from bisect import bisect_left
from functools import partial
from itertools import compress, count, repeat
from operator import attrgetter, is_not, lt, ne
from typing import (
    Any,
    Dict,
    FrozenSet,
    Iterable,
    List,
    NamedTuple,
    Optional,
    Sequence,
    Tuple,
)

from adk_compaction_backport._compaction_events import (
    compaction_of,
    compactions_of,
    end_timestamp,
    summaries_in,
    widened,
)
from adk_compaction_backport._incremental_reads import shared_prefix
from adk_compaction_backport._rewinds import live_events, rewound_before

_TIMESTAMP = attrgetter("timestamp")
_ID = attrgetter("id")
_INVOCATION = attrgetter("invocation_id")
_ACTIONS = attrgetter("actions")
_COMPACTION = attrgetter("compaction")
_REWIND = attrgetter("rewind_before_invocation_id")


class Columns(NamedTuple):
    """What the window's arithmetic and a summary's checks read of each event
    a turn saw, as lists: read once, so the session is not passed over again.
    Made only where no rewind is among the events (``_pass_over``)."""

    timestamps: List[float]
    invocations: List[Any]
    compactions: List[Any]
    ids: List[str]
    summary_indexes: Sequence[int] = ()
    """Where the summaries are, in order."""
    newest_ends: Sequence[float] = ()
    """The newest end among the summaries up to each of ``summary_indexes``
    (``newest_end``)."""

    def newest_end_before(self, place: int) -> Optional[float]:
        """The newest end among the summaries before ``place``; None if none
        is there. A bisection: no pass over the events."""
        before = bisect_left(self.summary_indexes, place)
        return self.newest_ends[before - 1] if before else None


class Remembered(NamedTuple):
    """What a pass over a turn's events found, kept for the session's next
    turn (``_column_memory``), which reads the same stored events again as new
    objects: no event is held, only their columns and the summaries' copies."""

    columns: Columns
    copies: List[Any]
    """The summary at each of ``columns.summary_indexes``, its range widened
    (``widened``)."""


def newest_end(compactions: Iterable[Any]) -> float:
    """The newest ``end_timestamp`` among ``compactions`` (None for events
    that are not summaries), 0.0 if none. An end that is not a number reaches
    nothing and is left out (upstream's ranges treat a NaN bound so from
    2.13)."""
    ends = [
        getattr(compaction, "end_timestamp", None) or 0.0
        for compaction in compactions
        if compaction is not None
    ]
    return max((end for end in ends if end == end), default=0.0)


def _rewind_among(actions: List[Any]) -> bool:
    """Whether a rewind is among events with these ``actions`` (read in C
    where every one has the field; 1.16 has no rewinds, so no such field).
    ``_rewinds`` asks the events; the pass has their actions already."""
    try:
        return any(map(_REWIND, actions))
    except AttributeError:
        return any(getattr(a, "rewind_before_invocation_id", None) for a in actions)


def _common_prefix(one: List[Any], other: List[Any]) -> int:
    """How many leading items two lists share (compared in C)."""
    shorter = min(len(one), len(other))
    return next(compress(count(), map(ne, one, other)), shorter)


def _pass_over(
    events: Sequence[Any], earlier: Optional[Remembered] = None
) -> Optional[Tuple[Columns, Remembered]]:
    """The columns of ``events`` and what the next turn keeps of them; None
    for stand-ins or when a rewind is among them.

    ``earlier``: a previous turn's pass over the same session. Its events
    that still lead ``events`` (same ids and timestamps: a stored event never
    changes) are not read again, so a turn of a long session costs two passes
    in C (ids and timestamps) plus what is new. Each column is read in C; on
    a long session a pass costs mostly its memory reads.
    """
    try:
        ids = list(map(_ID, events))
        timestamps = list(map(_TIMESTAMP, events))
        kept = 0
        if earlier is not None:
            kept = min(
                _common_prefix(earlier.columns.ids, ids),
                _common_prefix(earlier.columns.timestamps, timestamps),
            )
        rest = events[kept:]
        actions = list(map(_ACTIONS, rest))
        new_compactions = list(map(_COMPACTION, actions))
        new_invocations = list(map(_INVOCATION, rest))
    except AttributeError:
        return None
    if _rewind_among(actions):
        return None
    if earlier is None or not kept:
        invocations, compactions = new_invocations, new_compactions
        indexes, copies, ends = [], [], []
    else:
        invocations = earlier.columns.invocations[:kept] + new_invocations
        compactions = earlier.columns.compactions[:kept] + new_compactions
        cut = bisect_left(earlier.columns.summary_indexes, kept)
        indexes = list(earlier.columns.summary_indexes[:cut])
        copies = earlier.copies[:cut]
        ends = list(earlier.columns.newest_ends[:cut])
    newest = ends[-1] if ends else 0.0
    for offset in compress(count(), map(is_not, new_compactions, repeat(None))):
        index = kept + offset
        newest = max(newest, newest_end([compactions[index]]))
        indexes.append(index)
        copies.append(widened(events[index]))
        ends.append(newest)
    columns = Columns(timestamps, invocations, compactions, ids, indexes, ends)
    return columns, Remembered(columns, copies)


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
    # On a long session most events are older than the newest summary: the
    # timestamps are compared in C, and only newer events cost a Python step.
    try:
        newer = list(
            compress(events, map(partial(lt, last_end), map(_TIMESTAMP, events)))
        )
    except AttributeError:  # a stand-in without timestamps: the check below
        newer = list(events)
    new: Dict[str, None] = {}
    for event in newer:
        if (
            event.timestamp > last_end
            and event.invocation_id
            and compaction_of(event) is None
        ):
            new[event.invocation_id] = None
    return list(new)


def may_be_due(
    app: Any, events: Sequence[Any], seen: Optional[SeenWindow] = None
) -> bool:
    """False only when no sliding-window summary can be due on ``events``.

    Saves the lock and the read after most invocations: fewer new invocations
    than the interval since the last summary the turn saw (a summary another
    process stored can only leave fewer). Token-threshold compaction and
    anything unexpected: maybe. ``seen``: the pass ``events`` was cut from
    (``window_from``), whose facts spare a pass over the session.
    """
    if getattr(app, "events_compaction_config", None) is None:
        return False
    interval = sliding_interval(app)
    return interval is None or len(_new_invocations(events, seen)) >= interval


def earlier_due_turn(
    app: Any, events: Sequence[Any], seen: Optional[SeenWindow] = None
) -> Optional[str]:
    """The first turn before the last one in ``events`` whose compaction is
    due and not landed: the turn one process would have compacted first."""
    interval = sliding_interval(app)
    new = _new_invocations(events, seen)
    if interval is None or interval < 1 or len(new) <= interval:
        return None
    return new[interval - 1]


def _new_invocations(events: Sequence[Any], seen: Optional[SeenWindow]) -> List[str]:
    return new_invocations(events) if seen is None else seen.new_invocations(events)


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
    (``window_from``) costs only what landed since. A read of storage made
    for the cut (``_incremental_reads``) returns the turn's older events as
    the very objects seen: what is new is found after the shared prefix.
    """

    __slots__ = (
        "_columns",
        "_ids",
        "events",
        "first_id",
        "newest_end",
        "remembered",
        "rewinds",
        "seen",
        "timestamps",
    )

    def __init__(
        self, seen: Sequence[Any], earlier: Optional[Remembered] = None
    ) -> None:
        self.seen = seen
        passed = _pass_over(seen, earlier)
        if passed is not None:
            columns, self.remembered = passed
            """What the session's next turn builds on (``_column_memory``);
            None where a rewind is among the events seen."""
            live = list(seen)
            for index, copy in zip(columns.summary_indexes, self.remembered.copies):
                live[index] = copy
            self.events: List[Any] = live
            """The live events, compaction ranges widened (``_compaction_events``)."""
            ends = columns.newest_ends
            self.newest_end = ends[-1] if ends else 0.0
            """The newest end of a live summary seen (0.0: none)."""
        else:  # a rewind among them, or stand-ins: the events' own passes
            self.remembered = None
            columns = None
            live = live_events(list(seen))
            compactions = compactions_of(live)
            self.events = [
                event if compaction is None else widened(event)
                for event, compaction in zip(live, compactions)
            ]
            self.newest_end = newest_end(compactions)
        self._columns = columns
        """Timestamp, invocation and compaction of each event seen, when no
        rewind is among them (all are live): the window's arithmetic reads
        these."""
        self.timestamps: Optional[List[float]] = (
            None if columns is None else columns.timestamps
        )
        """The timestamp of every event seen, when known (no rewind)."""
        self.first_id: Optional[str] = seen[0].id if seen else None
        """The first event seen: its incarnation of the session."""
        self.rewinds = len(self.events) != len(seen)
        """Whether a rewind is among the events seen."""
        self._ids: Optional[FrozenSet[str]] = None

    def new_invocations(self, window: Sequence[Any]) -> List[str]:
        """``new_invocations(window)`` for a window cut from this pass
        (``events`` and at most one landed summary after them), read from the
        columns: the session's events are not read again."""
        extra = window[len(self.events) :]
        if (
            self._columns is None
            or len(window) < len(self.events)
            or len(extra) > 1
            or any(compaction_of(e) is None for e in extra)
        ):
            return new_invocations(window)
        columns = self._columns
        timestamps, invocations = columns.timestamps, columns.invocations
        compactions = columns.compactions
        last_end = next((end_timestamp(e) for e in extra if end_timestamp(e)), None)
        if last_end is None:
            last_end = next(
                (
                    end_timestamp(self.events[index])
                    for index in range(len(compactions) - 1, -1, -1)
                    if compactions[index] is not None
                    and end_timestamp(self.events[index])
                ),
                0.0,
            )
        newer = compress(range(len(timestamps)), map(partial(lt, last_end), timestamps))
        new: Dict[str, None] = {}
        for index in newer:
            if invocations[index] and compactions[index] is None:
                new[invocations[index]] = None
        return list(new)

    @property
    def columns(self) -> Optional[Columns]:
        """The columns of the events seen, when no rewind is among them."""
        return self._columns

    @property
    def ids(self) -> FrozenSet[str]:
        """Every event seen, rewound or not (made when a cut needs it: a turn
        with nothing landed to look at does not)."""
        if self._ids is None:
            columns = self._columns
            self._ids = frozenset(
                map(_ID, self.seen) if columns is None else columns.ids
            )
        return self._ids

    def holds(self, event_id: Optional[str]) -> bool:
        """Whether an event with this id was seen (the first one costs no set)."""
        return event_id is not None and (
            event_id == self.first_id or event_id in self.ids
        )

    def new_in(self, stored: Sequence[Any]) -> Optional[List[Any]]:
        """The events of ``stored`` not seen, in order; None when ``stored``
        lacks the first event seen (another incarnation of the session).

        ``stored`` holds each id once. Its prefix made of the very objects
        seen (an incremental read's) is skipped without reading them.
        """
        prefix = shared_prefix(stored, self.seen)
        if prefix == 0 and not any(e.id == self.first_id for e in stored):
            return None
        if prefix == len(self.seen):
            return list(stored[prefix:])
        rest = set(map(_ID, self.seen[prefix:])) if prefix else self.ids
        return [e for e in stored[prefix:] if e.id not in rest]


def landed_summaries(
    seen: SeenWindow,
    own: Optional[OwnSummary] = None,
    stored: Optional[Sequence[Any]] = None,
) -> List[Any]:
    """Summaries stored since the turn read ``seen``, of the turn's incarnation:
    ``own`` (this process's last) and any in ``stored`` (storage read since)."""
    found: List[Any] = []
    if own is not None and seen.holds(own.first_event_id):
        found.append(own.event)
    if stored is None or seen.first_id is None:
        return found
    new = seen.new_in(stored)
    if new is None:
        return found
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
        if (end_timestamp(summary) or 0.0) > seen.newest_end
        and not seen.holds(summary.id)
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
