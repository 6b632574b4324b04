"""Schedules compactions, independent of any google-adk release.

Per session (its storage, app, user and session id) it keeps a *slot* while
a turn or a compaction of it is going:

* a single flight of compactions: a later compaction waits for the earlier one
  to land (``_turn_order`` says where it then stands across processes, and
  ``_windows`` what it compacts);
* the streams still held by their compaction, let go when a newer turn of
  the session starts (its client did not wait for them);
* this process's writes to the session (``_session_writes``: the current
  reference that summaries are written through, ``_summary_writes``);
* strong references to pending compaction tasks (google/adk-python#3174), so
  ``drain()`` and sync ``Runner.run`` can wait for them; a compaction that
  outlives ``ADK_COMPACTION_BACKPORT_TIMEOUT`` (a hung summarizer) is abandoned
  (``_compaction_run``).

Turns never wait here: only compactions wait for compactions.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from typing import Any, Callable, Dict, Hashable, List, Optional

from adk_compaction_backport._compaction_run import (
    CompactFn,
    run_compaction,
    time_limit_from_environment,
)
from adk_compaction_backport._compat import ASYNC_NULL_CONTEXT
from adk_compaction_backport._loops import (
    Finished,
    resolve_soon,
    running_loop,
    wait_unless_closed,
)
from adk_compaction_backport._session_identity import (
    SessionIdentity,
    SessionKey,
    session_key,
)
from adk_compaction_backport._session_writes import SessionWrites
from adk_compaction_backport._summary_writes import storing_a_summary
from adk_compaction_backport._turn_order import in_turn_order

logger = logging.getLogger("adk_compaction_backport")

# CompactFn and session_key: for the wrappers (families/), which name them here.
__all__ = ["COORDINATOR", "CompactFn", "Coordinator", "session_key"]


def _never_stale(error: BaseException) -> bool:
    return False


def _key_of(service: Any, session: Any) -> SessionKey:
    return session_key(service, session.app_name, session.user_id, session.id)


class _SessionSlot:
    """Bookkeeping for one session while it has a turn or a compaction going."""

    __slots__ = ("held_streams", "tail", "turns", "writes")

    def __init__(self) -> None:
        self.writes = SessionWrites()
        # The newest compaction's (thread-safe: sync ``Runner.run`` gives every
        # turn its own event loop).
        self.tail: Optional[Finished] = None
        self.turns = 0
        # Futures of the streams still held by their compaction, resolved when
        # a newer turn of the session starts (the client did not wait for them).
        self.held_streams: List[asyncio.Future] = []


class Coordinator:
    """Coordinates the compaction writes of every session in this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._slots: Dict[Hashable, _SessionSlot] = {}
        self._tasks: Dict[asyncio.Task, SessionKey] = {}
        self._is_stale: Callable[[BaseException], bool] = _never_stale
        self.time_limit = time_limit_from_environment()

    def configure(self, is_stale_error: Callable[[BaseException], bool]) -> None:
        """Tell the coordinator how this release words a stale-session write."""
        self._is_stale = is_stale_error

    def turn_started(
        self, service: Any, app_name: str, user_id: str, session_id: str
    ) -> SessionKey:
        key = session_key(service, app_name, user_id, session_id)
        with self._lock:
            slot = self._slots.setdefault(key, _SessionSlot())
            slot.turns += 1
            held, slot.held_streams = slot.held_streams, []
        for stream in held:
            resolve_soon(stream)
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
        key = _key_of(service, session)
        with self._lock:
            slot = self._slots.get(key)
            return slot is not None and slot.turns > 0

    def session_loaded(self, service: Any, session: Any) -> None:
        """A turn loaded ``session`` fresh from storage: it is now the current one."""
        key = _key_of(service, session)
        with self._lock:
            slot = self._slots.get(key)
            if slot is not None:
                slot.writes.loaded(session)

    def writing_through(self, service: Any, session: Any) -> Any:
        """A lock to hold while writing through ``session``, if others share it."""
        slot = self._slots.get(_key_of(service, session))
        return (
            ASYNC_NULL_CONTEXT if slot is None else slot.writes.writing_through(session)
        )

    def summary_ahead_of(self, service: Any, session: Any) -> bool:
        """Whether this process has a compaction of ``session`` in flight on
        this loop, or stored a summary ``session`` has not seen (issue #24:
        a request-time summary then waits for it instead of repeating it)."""
        key = _key_of(service, session)
        loop = running_loop()
        with self._lock:
            if any(
                task_key == key and task.get_loop() is loop and not task.done()
                for task, task_key in self._tasks.items()
            ):
                return True
            slot = self._slots.get(key)
            own = None if slot is None else slot.writes.own_summary
        if own is None:
            return False
        ids = {event.id for event in session.events}
        return own.event.id not in ids and own.first_event_id in ids

    @staticmethod
    def storing_a_summary() -> bool:
        """Whether the running code is the coordinator storing a summary."""
        return storing_a_summary()

    def is_stale(self, error: BaseException) -> bool:
        """Whether ``error`` is this release's stale-session rejection."""
        return self._is_stale(error)

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
            slot.tail = Finished(finished, loop)
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
        previous: Optional[Finished],
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
            if previous is None or previous.future.done():
                return False
            running(False)
            await wait_unless_closed(previous)
            return True

        order = in_turn_order(
            identity,
            app,
            session.events,
            slot.writes,
            self.time_limit,
            after_previous,
            on_wait=lambda: running(False),
            seen_session=session,
        )
        try:
            async with order as window:
                running(True)
                if order.nothing_due:
                    return  # upstream's pass over the session would find nothing
                await run_compaction(
                    compact,
                    app,
                    session,
                    window,
                    identity,
                    slot.writes,
                    self._is_stale,
                    self.time_limit,
                    order.seen_columns,
                )
        finally:
            running(False)

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
            if slot.tail is not None and slot.tail.future is finished:
                slot.tail = None
            self._forget_if_idle(key, slot)

    def _forget_if_idle(self, key: SessionKey, slot: _SessionSlot) -> None:
        idle = slot.turns <= 0 and (slot.tail is None or slot.tail.future.done())
        if idle and self._slots.get(key) is slot:
            del self._slots[key]

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
