"""May this summary be stored here, and through which ``Session``?

A summary is computed from a snapshot of the session's events and written
seconds later. By then the session may have been deleted, deleted and created
again with the same id (a "clear chat" button), rewound, or edited by another
process. The summary belongs only to the conversation it was made from, so
before every write attempt storage is read once (what is new since the turn's
read, ``_incremental_reads``) and the summary is stored only
if that storage still holds the same conversation: the snapshot's first event,
and every event the summary covers, in order, none of them rewound. Otherwise
it is dropped with a warning (a later compaction covers what is still there).

Then it is written through the newest turn's ``Session`` (the current
reference, ``_session_writes``), so that turn's next write is not behind
storage; or, when that object cannot be used, through the read just made. A
write refused as stale starts over: read, check, write.

``SummaryWriter`` stands in for the session service inside upstream's
compaction function, so every summary upstream writes goes through here.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from bisect import bisect_left
from itertools import compress, count, repeat
from operator import and_, attrgetter, ge, is_
from typing import Any, Callable, Iterable, List, NamedTuple, Optional, Sequence

from adk_compaction_backport._compaction_events import (
    TIMESTAMP_SLACK,
    compaction_of,
    compactions_of,
    end_timestamp,
)
from adk_compaction_backport._incremental_reads import shared_prefix
from adk_compaction_backport._revision_probe import worth_probing
from adk_compaction_backport._rewind_fence import fenced
from adk_compaction_backport._rewinds import live_events, rewound_before
from adk_compaction_backport._session_identity import SessionIdentity
from adk_compaction_backport._session_writes import SessionWrites
from adk_compaction_backport._windows import Columns, OwnSummary, newest_end

logger = logging.getLogger("adk_compaction_backport")
_ID = attrgetter("id")  # read in C: these checks run over the whole session

ATTEMPTS = 16
"""Read-check-write rounds before a summary that keeps losing is dropped: the
first through the current reference, the others through what was just read.
Several processes' turns on one session (a load balancer without affinity)
write between our read and our write more often than one process's do; a
summary dropped is a summarizer call wasted, and a window a later compaction
cuts elsewhere."""
STALE_PAUSE = 0.005
"""Seconds before reading again after losing, doubled each time up to
``LONGEST_PAUSE`` (about 3 s in all): another process's turn writes a burst of
events, and a summary that keeps reading in the middle of it keeps losing. On
a loaded machine (2 cores shared by 4 workers, the database and 3 busy
loops) a burst outlasted 8 rounds and 0.64 s."""
LONGEST_PAUSE = 0.32
# Set while a summary is stored: the session service's write wrapper leaves
# those writes to ``store_summary`` (its own checks and retries).
_STORING_A_SUMMARY: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "adk_compaction_backport_storing_a_summary", default=False
)


def storing_a_summary() -> bool:
    """Whether the running code is a ``SummaryWriter`` storing a summary."""
    return _STORING_A_SUMMARY.get()


class Snapshot(NamedTuple):
    """What a summary was computed from: whose session, and which events."""

    app_name: str
    user_id: str
    session_id: str
    first_event_id: Optional[str]
    """The first stored event: a session created again has other events."""
    events: List[Any]
    """The events compaction was given (rewinds applied), in order."""
    loaded: Sequence[Any] = ()
    """The events the turn held, as stored: a read before a write costs only
    what was stored after them (``_incremental_reads``)."""
    columns: Optional[Columns] = None
    """The columns of ``loaded`` (``_windows.SeenWindow``, no rewind among
    them), ``events`` cut from them: the checks read these, and of a read
    only what lies past the events it shares with ``loaded``."""
    seen: Any = None
    """The turn's ``Session`` whose events ``loaded`` are: its revision lets
    the read before the write find nothing stored since in one row."""

    @property
    def loaded_timestamps(self) -> Optional[List[float]]:
        return None if self.columns is None else self.columns.timestamps

    @property
    def cut_from_columns(self) -> bool:
        """Whether ``events`` are ``loaded``'s (ranges widened) and at most one
        summary after them, as ``_windows.window_from`` cuts a window: then
        the columns answer for them."""
        extra = self.events[len(self.loaded) :]
        return (
            self.columns is not None
            and len(self.columns.ids) == len(self.loaded)
            and len(self.loaded) <= len(self.events) <= len(self.loaded) + 1
            and all(compaction_of(event) is not None for event in extra)
        )

    @classmethod
    def of(
        cls, loaded: Any, given: List[Any], columns: Optional[Columns] = None
    ) -> Snapshot:
        """``loaded``: the turn's ``Session``; ``given``: what compaction saw;
        ``columns``: of ``loaded``'s events, which ``given`` was cut from."""
        first = loaded.events[0].id if loaded.events else None
        return cls(
            loaded.app_name,
            loaded.user_id,
            loaded.id,
            first,
            list(given),
            list(loaded.events),
            columns,
            loaded,
        )

    def covered_ids(
        self, summary: Any, indexes: Optional[List[int]] = None
    ) -> List[str]:
        """The events up to the summary's end, which the target must still hold.

        ``indexes``: ``covered_indexes(summary)``, when the caller has them.
        """
        if indexes is None:
            indexes = self.covered_indexes(summary)
        if indexes is not None and self.columns is not None:
            return list(map(self.columns.ids.__getitem__, indexes))
        limit = _limit_of(summary)
        return [
            event.id
            for event, compaction in zip(self.events, compactions_of(self.events))
            if compaction is None and event.timestamp <= limit
        ]

    def covered_indexes(self, summary: Any) -> Optional[List[int]]:
        """``covered_ids`` as places in ``loaded``, read from the columns;
        None without them."""
        columns = self.columns
        if columns is None or not self.cut_from_columns:
            return None
        # Not a summary, and not newer than the limit: read in C (a long
        # session's every event, once per summary written).
        plain = map(is_, columns.compactions, repeat(None))
        in_range = map(ge, repeat(_limit_of(summary)), columns.timestamps)
        return list(compress(count(), map(and_, plain, in_range)))


def _limit_of(summary: Any) -> float:
    end = end_timestamp(summary)
    return float("inf") if end is None else end + TIMESTAMP_SLACK


class Covered:
    """What a summary covers, worked out once for every check of one write.

    The check past the shared events reads only ``indexes``; the ids (one
    per covered event, most of a long session) are made when a whole check
    first needs them.
    """

    __slots__ = ("_ids", "_snapshot", "_summary", "indexes")

    def __init__(self, snapshot: Snapshot, summary: Any) -> None:
        self._snapshot, self._summary = snapshot, summary
        self.indexes: Optional[List[int]] = snapshot.covered_indexes(summary)
        """``Snapshot.covered_indexes`` (None without columns)."""
        self._ids: Optional[List[str]] = None

    @property
    def ids(self) -> List[str]:
        """``Snapshot.covered_ids``."""
        if self._ids is None:
            self._ids = self._snapshot.covered_ids(self._summary, self.indexes)
        return self._ids


def refusal(
    snapshot: Snapshot,
    summary: Any,
    target: Any,
    covered: Optional[Covered] = None,
) -> Optional[str]:
    """Why ``summary`` may not be stored in ``target`` (a ``Session``), or None.

    ``covered``: ``Covered(snapshot, summary)``, when the caller has it.
    """
    if target is None:
        return "the session was deleted"
    shared = _shared_with_loaded(snapshot, target.events)
    if shared:
        indexes = None if covered is None else covered.indexes
        return _refusal_past(snapshot, summary, target.events, shared, indexes)
    stored_ids = list(map(_ID, target.events))
    stored_set = set(stored_ids)
    if snapshot.first_event_id is not None and snapshot.first_event_id not in (
        stored_set
    ):
        return (
            "the session no longer holds the conversation the summary was made "
            "from (deleted and created again with the same id, or its events "
            "were removed)"
        )
    covered_ids = snapshot.covered_ids(summary) if covered is None else covered.ids
    live = live_events(target.events)
    live_ids = stored_ids if len(live) == len(stored_ids) else list(map(_ID, live))
    covered_set = set(covered_ids)
    missing = covered_set - stored_set
    if missing:
        return f"{len(missing)} event(s) it summarizes were removed from storage"
    if live_ids is not stored_ids and not covered_set <= set(live_ids):
        return "event(s) it summarizes were rewound"
    if not _in_order(covered_ids, live_ids):
        return "the events it summarizes are no longer stored in that order"
    if _reaches_as_far(compactions_of(live), summary):
        return "the session already stores a summary reaching as far"
    return None


def _shared_with_loaded(snapshot: Snapshot, events: Sequence[Any]) -> int:
    """How many of ``events`` lead with the very objects of ``snapshot.loaded``
    (a read here returns them so), when the snapshot has their columns and no
    rewind is among the rest; 0 otherwise."""
    if not snapshot.cut_from_columns:
        return 0
    shared = shared_prefix(events, snapshot.loaded)
    if shared and any(rewound_before(event) for event in events[shared:]):
        return 0  # a rewind may remove shared events: the whole check
    return shared


def _refusal_past(
    snapshot: Snapshot,
    summary: Any,
    events: Sequence[Any],
    shared: int,
    indexes: Optional[List[int]] = None,
) -> Optional[str]:
    """``refusal`` where ``events`` lead with ``shared`` of the snapshot's own
    (so its first event, its order, no rewind): what the summary covers from
    there on must follow, in order, and no stored summary reach as far. Reads
    the columns and the events past them, not the session again.
    ``indexes``: ``snapshot.covered_indexes(summary)``, when the caller has them."""
    columns = snapshot.columns
    if indexes is None:
        indexes = snapshot.covered_indexes(summary)
    assert columns is not None and indexes is not None  # cut_from_columns
    wanted = list(map(columns.ids.__getitem__, indexes[bisect_left(indexes, shared) :]))
    rest = events[shared:]
    rest_ids = list(map(_ID, rest))
    missing = set(wanted) - set(rest_ids)
    if missing:
        return f"{len(missing)} event(s) it summarizes were removed from storage"
    if not _in_order(wanted, rest_ids):
        return "the events it summarizes are no longer stored in that order"
    if _newest_end_reaches(columns.newest_end_before(shared), summary) or (
        _reaches_as_far(compactions_of(rest), summary)
    ):
        return "the session already stores a summary reaching as far"
    return None


def _ids_of(snapshot: Snapshot, events: Sequence[Any]) -> List[str]:
    """The ids of ``events``, from the columns for those shared with ``loaded``."""
    columns = snapshot.columns
    shared = 0 if columns is None else shared_prefix(events, snapshot.loaded)
    if columns is None or not shared:
        return list(map(_ID, events))
    return columns.ids[:shared] + list(map(_ID, events[shared:]))


def _same_events(one: Any, other: Any, snapshot: Optional[Snapshot] = None) -> bool:
    """Whether two ``Session``s hold the same stored events (ids are unique in
    a session's storage): the checks on one then answer for the other."""
    if len(one.events) != len(other.events):
        return False
    if snapshot is None:
        return list(map(_ID, one.events)) == list(map(_ID, other.events))
    same = shared_prefix(one.events, other.events)
    if same:  # the very same objects lead both: compare the ids past them
        rest = slice(same, None)
        return list(map(_ID, one.events[rest])) == list(map(_ID, other.events[rest]))
    return _ids_of(snapshot, one.events) == _ids_of(snapshot, other.events)


def _in_order(wanted: List[str], stored: List[str]) -> bool:
    """Whether ``wanted`` appears in ``stored`` in the same order."""
    wanted_set = set(wanted)
    if list(filter(wanted_set.__contains__, stored)) == wanted:
        return True  # the usual answer, without a Python call per stored event
    remaining = iter(stored)
    return all(any(found == event_id for found in remaining) for event_id in wanted)


def _reaches_as_far(compactions: Iterable[Any], summary: Any) -> bool:
    """Another writer (another process) already stored this summary's range.

    ``compactions``: those of the stored events (None for the others).
    """
    stored = [compaction for compaction in compactions if compaction is not None]
    return bool(stored) and _newest_end_reaches(newest_end(stored), summary)


def _newest_end_reaches(newest_end: Optional[float], summary: Any) -> bool:
    """``_reaches_as_far`` of stored summaries whose newest end is known
    (None: there are none), as the pass over a turn's events keeps it."""
    end = end_timestamp(summary)
    if end is None or newest_end is None:
        return False
    return newest_end >= end - TIMESTAMP_SLACK


class SummaryWriter:
    """Stands in for the session service inside upstream's compaction function.

    Upstream calls ``append_event(session=<its session>, event=summary)``; the
    write goes where ``store_summary`` allows, through the session's current
    reference or a fresh read. Anything else goes to the service.
    """

    def __init__(
        self,
        identity: SessionIdentity,
        writes: SessionWrites,
        snapshot: Snapshot,
        is_stale: Callable[[BaseException], bool],
    ) -> None:
        self._identity = identity
        self._writes = writes
        self._snapshot = snapshot
        self._is_stale = is_stale

    def __getattr__(self, name: str) -> Any:
        return getattr(self._identity.service, name)

    async def append_event(self, session: Any, event: Any) -> Any:
        token = _STORING_A_SUMMARY.set(True)
        try:
            async with fenced(self._identity):
                stored = await store_summary(
                    self._identity, self._snapshot, event, self._writes, self._is_stale
                )
        finally:
            _STORING_A_SUMMARY.reset(token)
        if stored:
            self._writes.own_summary = OwnSummary(event, self._snapshot.first_event_id)
        return event


async def store_summary(
    identity: SessionIdentity,
    snapshot: Snapshot,
    summary: Any,
    writes: SessionWrites,
    is_stale: Callable[[BaseException], bool],
) -> bool:
    """Store ``summary`` where it belongs, or drop it (logged); True if stored.

    ``writes``: this process's writes to the session, whose current reference
    (asked after the read: a newer turn may have started meanwhile) the first
    attempt writes through, holding its lock. Each attempt costs one read of
    what the session stored since the last.
    """
    refused_once = False
    known = snapshot.loaded
    covered = Covered(snapshot, summary)  # the same for every check
    for attempt in range(ATTEMPTS):
        first = attempt == 0  # later ones follow a write storage refused
        stored = await identity.read(
            known,
            snapshot.loaded_timestamps if first else None,
            worth_probing(snapshot.seen, writes.current_here()) if first else None,
        )
        if stored is not None:
            # The events read as the very objects known are not the summary:
            # an earlier attempt that committed shows among the others.
            fresh = stored.events[shared_prefix(stored.events, known) :]
            if any(e.id == summary.id for e in fresh):
                return True  # an earlier attempt committed, only its answer was lost
            known = stored.events  # the next attempt reads what is newer still
        reason = refusal(snapshot, summary, stored, covered)
        if reason is not None:
            _dropped(snapshot, reason)
            return False
        through = stored
        newest = writes.current_here() if attempt == 0 else None
        if newest is not None and (
            _same_events(newest, stored, snapshot)
            or not refusal(snapshot, summary, newest, covered)
        ):
            through = newest  # its turn's next write then stays level with storage
        try:
            async with writes.writing_through(through):
                await identity.service.append_event(session=through, event=summary)
            return True
        except Exception as error:
            if is_stale(error):
                # Another writer got there first: read and check again, a
                # little later each time (its turn may still be writing).
                if attempt + 1 < ATTEMPTS:
                    await asyncio.sleep(min(STALE_PAUSE * 2**attempt, LONGEST_PAUSE))
                continue
            if refused_once:
                logger.warning(
                    "the summary of session %s was dropped: the database refused "
                    "it twice. The session's turns are not affected; a later "
                    "compaction covers its invocations.",
                    snapshot.session_id,
                    exc_info=True,
                )
                return False
            refused_once = True
            logger.warning(
                "storing the summary of session %s failed (%s; the message is "
                "left out: a database error may quote the summary and the "
                "session's data); retrying once on a fresh read",
                snapshot.session_id,
                type(error).__name__,
            )
    _dropped(snapshot, "other writers kept changing the session while it was written")
    return False


def _dropped(snapshot: Snapshot, reason: str) -> None:
    logger.warning(
        "the summary of session %s (app %s, user %s) was dropped: %s; a later "
        "compaction covers what the session still holds",
        snapshot.session_id,
        snapshot.app_name,
        snapshot.user_id,
        reason,
    )
