"""One idea of the fix, independent of any google-adk release.

Per session (one session service, app, user and session id) it keeps:

* the *current session reference*: the ``Session`` object the newest turn
  loaded fresh from storage. A summary is written through it, so neither the
  summary nor that turn's next write is behind storage (``_summary_writes``
  decides whether a summary may be stored at all, and through which object);
* a single flight of compactions: a later compaction waits for the earlier one
  to land, then evaluates the sliding window on the events its own turn saw
  plus the summary that landed since. Across processes on one database the
  session's lock (``_process_locks``) is taken next, and storage is read once
  for a summary another process stored meanwhile;
* strong references to pending compaction tasks (google/adk-python#3174), so
  ``drain()`` and sync ``Runner.run`` can wait for them; a compaction that
  outlives ``ADK_COMPACTION_BACKPORT_TIMEOUT`` (a hung summarizer) is abandoned.

Turns never wait here: only compactions wait for compactions.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import logging
import os
import threading
import time
from typing import (
    Any,
    Awaitable,
    Callable,
    Dict,
    Hashable,
    List,
    NamedTuple,
    Optional,
    Tuple,
)

from adk_compaction_backport._compaction_events import (
    compaction_of,
    end_timestamp,
    widened,
)
from adk_compaction_backport._compat import ASYNC_NULL_CONTEXT
from adk_compaction_backport._incremental_reads import read_session
from adk_compaction_backport._process_locks import (
    claimed_elsewhere,
    session_lock,
    turn_claim,
    until_claimed_is,
)
from adk_compaction_backport._rewind_fence import fenced
from adk_compaction_backport._rewinds import live_events
from adk_compaction_backport._storage import storage_of
from adk_compaction_backport._summary_writes import Snapshot, store_summary

logger = logging.getLogger("adk_compaction_backport")

SessionKey = Tuple[Hashable, str, str, str]
CompactFn = Callable[[Any, Any, Any], Awaitable[Any]]
"""Upstream's ``_run_compaction_for_sliding_window(app, session, session_service)``."""

TIME_LIMIT_VARIABLE = "ADK_COMPACTION_BACKPORT_TIMEOUT"
# How long after an earlier due turn ended its compaction may still be about
# to claim it (a first lock connection opening, a busy machine): a later
# turn's compaction that finds it unclaimed waits that long for the claim.
CLAIM_GRACE = 1.0
DEFAULT_TIME_LIMIT = 300.0
# Set while the coordinator stores a summary: the session service's write
# wrapper leaves those writes to ``store_summary`` (its own checks and retries).
_STORING_A_SUMMARY: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "adk_compaction_backport_storing_a_summary", default=False
)


def _time_limit_from_environment() -> float:
    """Seconds a compaction may take before it is abandoned (a hung summarizer)."""
    try:
        return float(os.environ.get(TIME_LIMIT_VARIABLE, DEFAULT_TIME_LIMIT))
    except ValueError:
        return DEFAULT_TIME_LIMIT


def _never_stale(error: BaseException) -> bool:
    return False


class _Tail(NamedTuple):
    finished: concurrent.futures.Future
    loop: asyncio.AbstractEventLoop


async def _wait_for(tail: _Tail) -> None:
    """Wait for a compaction, unless its event loop was closed under it."""
    waiting = asyncio.wrap_future(tail.finished)
    while not waiting.done():
        await asyncio.wait([waiting], timeout=1.0)
        if tail.loop.is_closed() and not waiting.done():
            waiting.cancel()  # a loop closed without cancelling its tasks
            return


class _SessionSlot:
    """Bookkeeping for one session while it has a turn or a compaction going."""

    __slots__ = (
        "current",
        "current_loop",
        "held_streams",
        "last_summary",
        "last_summary_from",
        "tail",
        "turns",
        "writes",
    )

    def __init__(self) -> None:
        self.current: Any = None
        self.current_loop: Optional[asyncio.AbstractEventLoop] = None
        # Serializes the writes through ``current`` (a turn's and a summary's)
        # on ``current_loop``: releases before 1.25 have no lock of their own,
        # and interleaved appends through one ``Session`` leave it looking
        # stale.
        self.writes: Optional[asyncio.Lock] = None
        self.last_summary: Any = None
        # The first event of the conversation it summarizes (its incarnation).
        self.last_summary_from: Optional[str] = None
        # Resolved when the newest compaction has finished, with the loop it
        # runs on. A thread-safe future: sync ``Runner.run`` gives every turn
        # its own event loop.
        self.tail: Optional[_Tail] = None
        self.turns = 0
        # Futures of the streams still held by their compaction, resolved when
        # a newer turn of the session starts (the client did not wait for them).
        self.held_streams: List[asyncio.Future] = []


def _resolve_soon(future: asyncio.Future) -> None:
    """Resolve ``future`` on its own event loop (turns may run on others)."""

    def resolve() -> None:
        if not future.done():
            future.set_result(None)

    # A closed loop raises RuntimeError: nobody waits for that stream any more.
    with contextlib.suppress(RuntimeError):
        future.get_loop().call_soon_threadsafe(resolve)


def _storage_identity(service: Any) -> Hashable:
    """Services on the same database coordinate, even as separate objects.

    ``DatabaseSessionService`` names its database by engine URL,
    ``SqliteSessionService`` (1.19+) by file path.
    """
    url = getattr(getattr(service, "db_engine", None), "url", None)
    if url is not None:
        return ("database", str(url))
    path = getattr(service, "_db_path", None)
    if isinstance(path, str) and path:
        return ("sqlite file", os.path.realpath(path))
    return ("service", id(service))


def session_key(
    service: Any, app_name: str, user_id: str, session_id: str
) -> SessionKey:
    return (
        _storage_identity(storage_of(service, app_name)),
        app_name,
        user_id,
        session_id,
    )


def running_loop() -> Optional[asyncio.AbstractEventLoop]:
    """The running event loop, or None outside one."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _landed_summaries(slot: _SessionSlot, session: Any, stored: Any) -> List[Any]:
    """Summaries stored since the turn's read, of the turn's incarnation."""
    first = session.events[0].id if session.events else None
    found: List[Any] = []
    if slot.last_summary is not None and slot.last_summary_from in {
        e.id for e in session.events
    }:
        found.append(slot.last_summary)
    if stored is not None and first is not None:
        live = live_events(stored.events)
        if any(e.id == first for e in stored.events):
            found.extend(e for e in live if end_timestamp(e) is not None)
    return found


def _sliding_interval(app: Any) -> Optional[int]:
    """The sliding window's interval, None where it does not decide alone
    (token-threshold compaction, anything unexpected)."""
    config = getattr(app, "events_compaction_config", None)
    interval = getattr(config, "compaction_interval", None)
    if getattr(config, "token_threshold", None) is not None or not isinstance(
        interval, int
    ):
        return None
    return interval


def _new_invocations(events: List[Any]) -> List[str]:
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


def _may_be_due(app: Any, events: List[Any]) -> bool:
    """False only when no sliding-window summary can be due on ``events``.

    Saves the lock and the read after most invocations: fewer new invocations
    than the interval since the last summary the turn saw (a summary another
    process stored can only leave fewer). Token-threshold compaction and
    anything unexpected: maybe.
    """
    if getattr(app, "events_compaction_config", None) is None:
        return False
    interval = _sliding_interval(app)
    return interval is None or len(_new_invocations(events)) >= interval


def _earlier_due_turn(app: Any, events: List[Any]) -> Optional[str]:
    """The first turn before the last one in ``events`` whose compaction is
    due and not landed: the turn one process would have compacted first."""
    interval = _sliding_interval(app)
    new = _new_invocations(events)
    if interval is None or interval < 1 or len(new) <= interval:
        return None
    return new[interval - 1]


def _seconds_since_end(events: List[Any], turn: str) -> float:
    """Seconds since the last event of invocation ``turn`` in ``events``."""
    ended = max((e.timestamp for e in events if e.invocation_id == turn), default=0.0)
    return time.time() - ended


def _turn_of(events: List[Any]) -> str:
    """The invocation of the turn that ended with ``events``."""
    return next(
        (e.invocation_id for e in reversed(events) if compaction_of(e) is None), ""
    )


async def _read(
    service: Any, app_name: str, user_id: str, session_id: str, known: List[Any]
) -> Any:
    """The session as storage holds it now, or None if it cannot be read.

    Costs what was stored since the turn's events (``known``) were read.
    """
    try:
        return await read_session(service, app_name, user_id, session_id, known)
    except Exception:  # the summary write reads again and reports what fails
        logger.debug("reading session %s before compaction failed", session_id)
        return None


class _SummaryWriter:
    """Stands in for the session service inside upstream's compaction function.

    Upstream calls ``append_event(session=<its session>, event=summary)``; the
    write goes where ``_summary_writes`` allows, through the session's current
    reference or a fresh read.
    """

    def __init__(
        self,
        coordinator: Coordinator,
        slot: _SessionSlot,
        service: Any,
        snapshot: Snapshot,
    ) -> None:
        self._coordinator = coordinator
        self._slot = slot
        self._service = service
        self._snapshot = snapshot

    def __getattr__(self, name: str) -> Any:
        return getattr(self._service, name)

    async def append_event(self, session: Any, event: Any) -> Any:
        return await self._coordinator._write_summary(
            self._slot, self._service, self._snapshot, event
        )


class Coordinator:
    """Coordinates the compaction writes of every session in this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._slots: Dict[Hashable, _SessionSlot] = {}
        self._tasks: Dict[asyncio.Task, SessionKey] = {}
        self._is_stale: Callable[[BaseException], bool] = _never_stale
        self.time_limit = _time_limit_from_environment()

    def configure(self, is_stale_error: Callable[[BaseException], bool]) -> None:
        """Tell the coordinator how this release words a stale-session write."""
        self._is_stale = is_stale_error

    # -- turns ---------------------------------------------------------------

    def turn_started(
        self, service: Any, app_name: str, user_id: str, session_id: str
    ) -> SessionKey:
        key = session_key(service, app_name, user_id, session_id)
        with self._lock:
            slot = self._slots.setdefault(key, _SessionSlot())
            slot.turns += 1
            held, slot.held_streams = slot.held_streams, []
        for stream in held:
            _resolve_soon(stream)
        return key

    def turn_ended(self, key: SessionKey) -> None:
        with self._lock:
            slot = self._slots.get(key)
            if slot is not None:
                slot.turns -= 1
                self._forget_if_idle(key, slot)

    def in_a_turn(self, service: Any, session: Any) -> bool:
        """Whether a Runner turn of ``session`` is running (else: a direct call).

        Outside a Runner invocation the wrappers call upstream's code as it is
        (same writes, same yields): a test or a tool that calls compaction or
        ``append_event`` itself sees the released behaviour.
        """
        key = session_key(service, session.app_name, session.user_id, session.id)
        with self._lock:
            slot = self._slots.get(key)
            return slot is not None and slot.turns > 0

    def session_loaded(self, service: Any, session: Any) -> None:
        """A turn loaded ``session`` fresh from storage: it is now the current one."""
        key = session_key(service, session.app_name, session.user_id, session.id)
        with self._lock:
            slot = self._slots.get(key)
            if slot is not None:
                loop = running_loop()
                if slot.current_loop is not loop:
                    slot.writes = asyncio.Lock() if loop is not None else None
                slot.current = session
                slot.current_loop = loop

    def writing_through(self, service: Any, session: Any) -> Any:
        """A lock to hold while writing through ``session``, if others share it."""
        key = session_key(service, session.app_name, session.user_id, session.id)
        slot = self._slots.get(key)
        if (
            slot is None
            or slot.current is not session
            or slot.writes is None
            or slot.current_loop is not running_loop()
        ):
            return ASYNC_NULL_CONTEXT
        return slot.writes

    def summary_ahead_of(self, service: Any, session: Any) -> bool:
        """Whether this process has a compaction of ``session`` in flight on
        this loop, or stored a summary ``session`` has not seen (issue #24:
        a request-time summary then waits for it instead of repeating it)."""
        key = session_key(service, session.app_name, session.user_id, session.id)
        loop = running_loop()
        with self._lock:
            if any(
                task_key == key and task.get_loop() is loop and not task.done()
                for task, task_key in self._tasks.items()
            ):
                return True
            slot = self._slots.get(key)
            summary = None if slot is None else slot.last_summary
            first = None if slot is None else slot.last_summary_from
        ids = {event.id for event in session.events}
        return summary is not None and summary.id not in ids and first in ids

    @staticmethod
    def storing_a_summary() -> bool:
        """Whether the running code is the coordinator storing a summary."""
        return _STORING_A_SUMMARY.get()

    def is_stale(self, error: BaseException) -> bool:
        """Whether ``error`` is this release's stale-session rejection."""
        return self._is_stale(error)

    # -- compactions ---------------------------------------------------------

    async def compact(
        self, app: Any, session: Any, service: Any, compact: CompactFn
    ) -> None:
        """Run ``compact`` for the turn that ended with ``session``.

        For releases that await compaction inside the invocation (1.19+): when
        the compaction can start at once, the stream ends after its summary, as
        upstream's does (a sequential reader finds it stored), unless a newer
        turn of the session starts meanwhile: then its client did not wait for
        the end of the stream (an eager client), and the stream ends. One that
        has to wait for an earlier compaction of the session, in this process
        or another, does not hold the stream at all. Either way an eager
        client's stream ends no later than upstream's, and the compaction lands
        afterwards, tracked (``drain()``, sync ``Runner.run``, the time limit).
        If the stream's reader goes away, the compaction carries on.
        """
        loop = asyncio.get_running_loop()
        started, newer_turn = loop.create_future(), loop.create_future()
        task = self.submit(app, session, service, compact, started, newer_turn)
        # Cancelled before its first step, the task never resolves ``started``.
        task.add_done_callback(lambda _: started.done() or started.set_result(False))
        task.add_done_callback(lambda _: newer_turn.cancel())
        if await started:
            await asyncio.wait([task, newer_turn], return_when=asyncio.FIRST_COMPLETED)
            if task.done():
                await task

    def submit(
        self,
        app: Any,
        session: Any,
        service: Any,
        compact: CompactFn,
        started: Optional[asyncio.Future] = None,
        newer_turn: Optional[asyncio.Future] = None,
    ) -> asyncio.Task:
        """Schedule ``compact`` for the turn that ended with ``session``.

        ``started`` resolves True once the compaction runs without waiting for
        another one, False when it has to wait (or ends first); ``newer_turn``
        resolves when a newer turn of the session starts in this process.
        """
        loop = asyncio.get_running_loop()
        key = session_key(service, session.app_name, session.user_id, session.id)
        # The events as the turn ended. The turn's ``Session`` may change while
        # this compaction waits: on 1.24-1.27 a stale write through it reloads
        # its events from storage, with the next turn's first events in them,
        # and a summary of that view would end in the middle of an invocation.
        session = session.model_copy(update={"events": list(session.events)})
        finished: concurrent.futures.Future = concurrent.futures.Future()
        with self._lock:
            slot = self._slots.setdefault(key, _SessionSlot())
            previous = slot.tail
            task = loop.create_task(
                self._compact(slot, previous, app, session, service, compact, started)
            )
            slot.tail = _Tail(finished, loop)
            self._tasks[task] = key
            if newer_turn is not None:
                slot.held_streams.append(newer_turn)
        task.add_done_callback(
            lambda done: self._finished(key, slot, done, finished, session.id)
        )
        return task

    async def _compact(
        self,
        slot: _SessionSlot,
        previous: Optional[_Tail],
        app: Any,
        session: Any,
        service: Any,
        compact: CompactFn,
        started: Optional[asyncio.Future] = None,
    ) -> None:
        def running(without_waiting: bool) -> None:
            if started is not None and not started.done():
                started.set_result(without_waiting)

        names = (session.app_name, session.user_id, session.id)
        window = self._window_events(slot, session)
        claim: Any = ASYNC_NULL_CONTEXT
        if _may_be_due(app, window):
            # Other processes see this turn's compaction pending from now on.
            claim = turn_claim(service, *names, _turn_of(session.events))
        try:
            async with claim:
                if previous is not None and not previous.finished.done():
                    running(False)
                    await _wait_for(previous)
                    window = self._window_events(slot, session)  # it may have landed
                if not _may_be_due(app, window):
                    running(True)
                    await self._run(slot, app, session, service, compact, window)
                    return
                await self._run_in_turn_order(
                    slot, app, session, service, compact, running
                )
        finally:
            running(False)

    async def _run_in_turn_order(
        self,
        slot: _SessionSlot,
        app: Any,
        session: Any,
        service: Any,
        compact: CompactFn,
        running: Callable[[bool], None],
    ) -> None:
        """Across processes: one compaction of the session at a time, building
        on whatever summary another process stored meanwhile, and after the
        compaction of an earlier turn still pending in another process (a later
        turn's compaction that got the lock first waits for it, so the windows
        are those one process would cut)."""
        names = (session.app_name, session.user_id, session.id)
        deadline = time.monotonic() + self.time_limit
        graced = False
        while True:
            lock = session_lock(
                service,
                *names,
                max(0.0, deadline - time.monotonic()),
                on_wait=lambda: running(False),
            )
            async with lock as shared:
                stored = None
                if shared is not None:
                    stored = await _read(service, *names, session.events)
                window = self._window_events(slot, session, stored)
                earlier = _earlier_due_turn(app, window) if shared else None
                # Wait for the claim to go (its compaction is pending in another
                # process) or, once, to come (it may be about to be taken).
                wait_until_claimed: Optional[bool] = None
                if earlier is not None and time.monotonic() < deadline:
                    if await claimed_elsewhere(service, *names, earlier):
                        wait_until_claimed, until = False, deadline
                    elif not graced:
                        graced = True
                        grace = CLAIM_GRACE - _seconds_since_end(window, earlier)
                        if grace > 0:
                            wait_until_claimed = True
                            until = time.monotonic() + min(grace, CLAIM_GRACE)
                if wait_until_claimed is None:
                    running(True)
                    await self._run(slot, app, session, service, compact, window)
                    return
            running(False)
            await until_claimed_is(
                wait_until_claimed, service, names, earlier, min(until, deadline)
            )

    async def _run(
        self,
        slot: _SessionSlot,
        app: Any,
        session: Any,
        service: Any,
        compact: CompactFn,
        given: List[Any],
    ) -> None:
        """Run upstream's compaction on ``given`` (``_window_events``)."""
        view = session.model_copy(update={"events": given})
        writer = _SummaryWriter(self, slot, service, Snapshot.of(session, given))
        try:
            await asyncio.wait_for(compact(app, view, writer), self.time_limit)
        except asyncio.TimeoutError:
            logger.warning(
                "compaction of session %s took longer than %s s and was abandoned; "
                "no summary was stored for it (%s sets the limit)",
                session.id,
                self.time_limit,
                TIME_LIMIT_VARIABLE,
            )
        except Exception:
            logger.warning(
                "compaction of session %s (app %s, user %s) failed; no summary was "
                "stored for it. The turn itself is not affected.",
                session.id,
                session.app_name,
                session.user_id,
                exc_info=True,
            )

    @staticmethod
    def _window_events(
        slot: _SessionSlot, session: Any, stored: Any = None
    ) -> List[Any]:
        """The live events the turn saw, plus the newest summary that landed after.

        Landed: stored by this process since (``slot.last_summary``) or, when
        storage was read (``stored``), by any process. Rewound events are left
        out on every release: a summary of them would bring them back into the
        prompt (upstream leaves them out from 2.5). A summary that landed in
        another incarnation of the session (deleted and created again) is not
        this conversation's.
        """
        events = live_events(session.events)
        seen_ids = {e.id for e in session.events}
        newest_seen = max((end_timestamp(e) or 0.0 for e in events), default=0.0)
        landed = [
            summary
            for summary in _landed_summaries(slot, session, stored)
            if summary.id not in seen_ids
            and (end_timestamp(summary) or 0.0) > newest_seen
        ]
        if landed:
            events.append(max(landed, key=lambda e: end_timestamp(e) or 0.0))
        return [widened(e) for e in events]

    async def _write_summary(
        self, slot: _SessionSlot, service: Any, snapshot: Snapshot, event: Any
    ) -> Any:
        def current() -> Any:
            return slot.current if slot.current_loop is running_loop() else None

        token = _STORING_A_SUMMARY.set(True)
        names = (snapshot.app_name, snapshot.user_id, snapshot.session_id)
        try:
            async with fenced(session_key(service, *names), service, *names):
                stored = await store_summary(
                    service,
                    snapshot,
                    event,
                    current,
                    lambda session: self.writing_through(service, session),
                    self._is_stale,
                )
        finally:
            _STORING_A_SUMMARY.reset(token)
        if stored:
            slot.last_summary = event
            slot.last_summary_from = snapshot.first_event_id
        return event

    def _finished(
        self,
        key: SessionKey,
        slot: _SessionSlot,
        task: asyncio.Task,
        finished: concurrent.futures.Future,
        session_id: str,
    ) -> None:
        if not finished.cancelled():  # a waiter gave up on a closed loop
            finished.set_result(None)
        if task.cancelled():
            logger.warning(
                "compaction of session %s was cancelled before its summary was "
                "stored (did the event loop close? await "
                "adk_compaction_backport.drain() before exiting)",
                session_id,
            )
        with self._lock:
            del self._tasks[task]
            if slot.tail is not None and slot.tail.finished is finished:
                slot.tail = None
            self._forget_if_idle(key, slot)

    def _forget_if_idle(self, key: SessionKey, slot: _SessionSlot) -> None:
        idle = slot.turns <= 0 and (slot.tail is None or slot.tail.finished.done())
        if idle and self._slots.get(key) is slot:
            del self._slots[key]

    # -- waiting -------------------------------------------------------------

    async def wait_for_session(
        self, service: Any, app_name: str, user_id: str, session_id: str
    ) -> None:
        """Wait until this session's compactions on this event loop have landed."""
        key = session_key(service, app_name, user_id, session_id)
        await self._wait(lambda task_key: task_key == key)

    async def drain(self, timeout: Optional[float] = None) -> int:
        """Wait for every compaction pending on this event loop."""
        return await self._wait(lambda task_key: True, timeout)

    async def _wait(
        self, wanted: Callable[[SessionKey], bool], timeout: Optional[float] = None
    ) -> int:
        loop = asyncio.get_running_loop()
        with self._lock:
            pending = [
                task
                for task, key in self._tasks.items()
                if wanted(key) and task.get_loop() is loop and not task.done()
            ]
        if pending:
            await asyncio.wait(pending, timeout=timeout)
        return len(pending)

    def pending(self) -> int:
        """How many compactions are still running (all event loops)."""
        with self._lock:
            return sum(not t.done() for t in self._tasks)

    def tracked_sessions(self) -> int:
        """How many sessions have bookkeeping right now (0 when all are idle)."""
        with self._lock:
            return len(self._slots)


COORDINATOR = Coordinator()
