"""A compaction's place in its session's order, as one ``async with``.

``async with in_turn_order(identity, app, seen, writes, limit, after, on_wait)
as window`` covers everything a compaction waits for before it may summarize:

* its turn's *claim* (``_process_locks.turn_claim``), taken at once when a
  summary may be due, so other processes see this turn's compaction pending
  from the turn's end;
* ``after()``: this process's earlier compaction of the session (the
  coordinator's single flight), after which the window is cut again (that
  compaction's summary may have landed);
* when a summary may still be due: the session's cross-process *lock*
  (``_process_locks.session_lock``), one read of storage for a summary another
  process stored meanwhile, and, when an earlier turn's window is due too and
  that turn is claimed in another process, letting go of the lock until that
  claim is gone (or, once, ``CLAIM_GRACE`` for a claim about to come): the
  windows are then cut where one process cuts them.

``window`` is what to compact (``_windows.window_events``, the turn's events
passed over once); the lock and the
claim are held until the block ends. Waiting is bounded by ``limit`` seconds.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any, Awaitable, Callable, List, NamedTuple, Optional, Sequence

from adk_compaction_backport._column_memory import COLUMN_MEMORY
from adk_compaction_backport._compat import ASYNC_NULL_CONTEXT
from adk_compaction_backport._process_locks import (
    claimed_elsewhere,
    session_lock,
    turn_claim,
    until_claimed_is,
)
from adk_compaction_backport._revision_probe import worth_probing
from adk_compaction_backport._session_identity import SessionIdentity
from adk_compaction_backport._session_writes import SessionWrites
from adk_compaction_backport._windows import (
    Columns,
    earlier_due_turn,
    may_be_due,
    seconds_since_end,
    sliding_interval,
    turn_of,
    window_from,
)

logger = logging.getLogger("adk_compaction_backport")

# How long after an earlier due turn ended its compaction may still be about
# to claim it (a first lock connection opening, a busy machine): a later
# turn's compaction that finds it unclaimed waits that long for the claim.
CLAIM_GRACE = 1.0


class _ClaimWait(NamedTuple):
    """Let go of the lock until ``turn``'s claim is ``held`` elsewhere (True:
    until it comes, False: until it goes), or ``until`` passes."""

    turn: str
    held: bool
    until: float


async def _read(
    identity: SessionIdentity,
    known: Sequence[Any],
    timestamps: Optional[List[float]] = None,
    seen: Optional[Any] = None,
) -> Any:
    """The session as storage holds it now, or None if it cannot be read.

    Costs what was stored since the turn's events (``known``, their
    ``timestamps`` if already read; ``seen``, their ``Session``) were read.
    """
    try:
        return await identity.read(known, timestamps, seen)
    except Exception:  # the summary write reads again and reports what fails
        logger.debug("reading session %s before compaction failed", identity.session_id)
        return None


class in_turn_order:
    """Claim, in-process order, grace and lock of one compaction (see above).

    ``seen``: the events its turn ended with; ``writes``: this process's
    writes to the session (``_session_writes``), whose ``own_summary`` is read
    each time the window is cut; ``after()``: waits for this process's earlier
    compaction of the session, True if it had to; ``on_wait()``: called when
    the compaction has to wait for another process; ``seen_session``: the
    ``Session`` whose events ``seen`` are (its revision lets a read of storage
    find nothing stored since in one row, ``_revision_probe``).
    """

    def __init__(
        self,
        identity: SessionIdentity,
        app: Any,
        seen: Sequence[Any],
        writes: SessionWrites,
        limit: float,
        after: Callable[[], Awaitable[bool]],
        on_wait: Callable[[], None],
        seen_session: Optional[Any] = None,
    ) -> None:
        self._identity, self._app = identity, app
        self._seen, self._writes = seen, writes
        self._seen_session = seen_session
        # One pass (over what is new since the session's last turn, where this
        # process served it); each cut of the window adds what landed.
        self._seen_window = COLUMN_MEMORY.seen_window(identity.key, seen)
        self._limit = limit
        self._after, self._on_wait = after, on_wait
        self._claim: Any = ASYNC_NULL_CONTEXT
        self._lock: Any = None
        self._graced = False
        self.nothing_due = False
        """True once no sliding-window summary can be due on the window
        (``may_be_due``): upstream's compaction, a pass over the whole session
        that would find nothing to do, is not called."""

    @property
    def seen_columns(self) -> Optional[Columns]:
        """The columns of the events the turn ended with (``SeenWindow``)."""
        return self._seen_window.columns

    async def __aenter__(self) -> List[Any]:
        window = self._window()
        due = may_be_due(self._app, window, self._seen_window)
        if due:
            # Other processes see this turn's compaction pending from now on.
            self._claim = turn_claim(self._identity, turn_of(self._seen))
        await self._claim.__aenter__()
        try:
            if await self._after():
                window = self._window()  # its summary may have landed
                due = may_be_due(self._app, window, self._seen_window)
            if not due:
                # A sliding window's arithmetic says upstream would find
                # nothing to do (anything else, e.g. a stand-in app, runs).
                self.nothing_due = sliding_interval(self._app) is not None
                return window
            return await self._locked()
        except BaseException:
            await self._claim.__aexit__(*sys.exc_info())
            raise

    async def __aexit__(self, *exc_info: Any) -> None:
        lock, self._lock = self._lock, None
        try:
            if lock is not None:
                await lock.__aexit__(*exc_info)
        finally:
            await self._claim.__aexit__(*exc_info)

    def _window(self, stored: Any = None) -> List[Any]:
        events = None if stored is None else stored.events
        return window_from(self._seen_window, self._writes.own_summary, events)

    async def _locked(self) -> List[Any]:
        """Across processes: one compaction of the session at a time, building
        on whatever summary another process stored meanwhile, after the
        compaction of an earlier turn still pending in another process."""
        deadline = time.monotonic() + self._limit
        while True:
            lock = session_lock(
                self._identity,
                max(0.0, deadline - time.monotonic()),
                on_wait=self._on_wait,
            )
            shared = await lock.__aenter__()
            try:
                stored = None
                if shared is not None:
                    stored = await _read(
                        self._identity,
                        self._seen,
                        self._seen_window.timestamps,
                        worth_probing(self._seen_session, self._writes.current_here()),
                    )
                window = self._window(stored)
                wait = await self._claim_wait(window, deadline) if shared else None
            except BaseException:
                await lock.__aexit__(*sys.exc_info())
                raise
            if wait is None:
                self._lock = lock
                return window
            await lock.__aexit__(None, None, None)
            self._on_wait()
            await until_claimed_is(
                wait.held, self._identity, wait.turn, min(wait.until, deadline)
            )

    async def _claim_wait(
        self, window: List[Any], deadline: float
    ) -> Optional[_ClaimWait]:
        """Whether to let go of the lock for an earlier due turn's claim: to go
        (its compaction is pending in another process) or, once, to come (it
        may be about to be taken). None: compact now."""
        earlier = earlier_due_turn(self._app, window, self._seen_window)
        if earlier is None or time.monotonic() >= deadline:
            return None
        if await claimed_elsewhere(self._identity, earlier):
            return _ClaimWait(earlier, False, deadline)
        if self._graced:
            return None
        self._graced = True
        grace = CLAIM_GRACE - seconds_since_end(window, earlier, time.time())
        if grace <= 0:
            return None
        return _ClaimWait(earlier, True, time.monotonic() + min(grace, CLAIM_GRACE))
