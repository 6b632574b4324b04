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
import logging
import os
import threading
from typing import (
    Any,
    Awaitable,
    Callable,
    Dict,
    Hashable,
    List,
    NamedTuple,
    Optional,
)

from adk_compaction_backport._compat import ASYNC_NULL_CONTEXT
from adk_compaction_backport._session_identity import (
    SessionIdentity,
    SessionKey,
    session_key,
)
from adk_compaction_backport._session_writes import SessionWrites
from adk_compaction_backport._summary_writes import (
    Snapshot,
    SummaryWriter,
    storing_a_summary,
)
from adk_compaction_backport._turn_order import in_turn_order

logger = logging.getLogger("adk_compaction_backport")

CompactFn = Callable[[Any, Any, Any], Awaitable[Any]]
"""Upstream's ``_run_compaction_for_sliding_window(app, session, session_service)``."""

TIME_LIMIT_VARIABLE = "ADK_COMPACTION_BACKPORT_TIMEOUT"
DEFAULT_TIME_LIMIT = 300.0


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

    __slots__ = ("held_streams", "tail", "turns", "writes")

    def __init__(self) -> None:
        # This process's writes to the session (the current reference).
        self.writes = SessionWrites()
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
                slot.writes.loaded(session)

    def writing_through(self, service: Any, session: Any) -> Any:
        """A lock to hold while writing through ``session``, if others share it."""
        key = session_key(service, session.app_name, session.user_id, session.id)
        slot = self._slots.get(key)
        return (
            ASYNC_NULL_CONTEXT if slot is None else slot.writes.writing_through(session)
        )

    @staticmethod
    def storing_a_summary() -> bool:
        """Whether the running code is the coordinator storing a summary."""
        return storing_a_summary()

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
        identity = SessionIdentity.of(service, session)
        key = identity.key
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
                self._compact(slot, previous, app, session, identity, compact, started)
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
        identity: SessionIdentity,
        compact: CompactFn,
        started: Optional[asyncio.Future] = None,
    ) -> None:
        def running(without_waiting: bool) -> None:
            if started is not None and not started.done():
                started.set_result(without_waiting)

        async def after_previous() -> bool:
            """Wait for this process's earlier compaction of the session."""
            if previous is None or previous.finished.done():
                return False
            running(False)
            await _wait_for(previous)
            return True

        order = in_turn_order(
            identity,
            app,
            session.events,
            slot.writes,
            self.time_limit,
            after_previous,
            on_wait=lambda: running(False),
        )
        try:
            async with order as window:
                running(True)
                await self._run(slot, app, session, identity, compact, window)
        finally:
            running(False)

    async def _run(
        self,
        slot: _SessionSlot,
        app: Any,
        session: Any,
        identity: SessionIdentity,
        compact: CompactFn,
        given: List[Any],
    ) -> None:
        """Run upstream's compaction on ``given`` (``window_events``)."""
        view = session.model_copy(update={"events": given})
        snapshot = Snapshot.of(session, given)
        writer = SummaryWriter(identity, slot.writes, snapshot, self._is_stale)
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
