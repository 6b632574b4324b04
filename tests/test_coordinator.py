"""The coordinator on its own: single flight, event loops, bookkeeping.

Release-agnostic: a real google-adk ``Session`` and a recording stand-in for
the session service; compaction functions are fakes that say when they run.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, List

import pytest
from google.adk.sessions.session import Session

from adk_compaction_backport._coordinator import Coordinator


class RecordingService:
    """Accepts every write; remembers what was written through which object."""

    def __init__(self) -> None:
        self.writes: List[Any] = []

    async def append_event(self, session: Any, event: Any) -> Any:
        self.writes.append((session, event))
        return event

    async def get_session(self, **_: Any) -> Any:
        return Session(id="s", app_name="app", user_id="u")


def session() -> Session:
    return Session(id="s", app_name="app", user_id="u")


@pytest.mark.asyncio
async def test_compactions_of_one_session_run_one_at_a_time():
    coordinator, service, order = Coordinator(), RecordingService(), []
    first_may_finish = asyncio.Event()

    async def first(app, view, writer):
        order.append("first starts")
        await first_may_finish.wait()
        order.append("first ends")

    async def second(app, view, writer):
        order.append("second starts")

    coordinator.submit(None, session(), service, first)
    done = coordinator.submit(None, session(), service, second)
    await asyncio.sleep(0)
    first_may_finish.set()
    await asyncio.wait_for(done, timeout=30)
    assert order == ["first starts", "first ends", "second starts"]
    assert coordinator.tracked_sessions() == 0


@pytest.mark.asyncio
async def test_the_summary_goes_through_the_newest_turns_session():
    coordinator, service = Coordinator(), RecordingService()
    key = coordinator.turn_started(service, "app", "u", "s")
    older, newer = session(), session()
    coordinator.session_loaded(service, newer)

    async def summarize(app, view, writer):
        await writer.append_event(session=view, event="summary")

    await coordinator.submit(None, older, service, summarize)
    assert service.writes == [(newer, "summary")]
    coordinator.turn_ended(key)
    assert coordinator.tracked_sessions() == 0


def _in_new_loop_thread(coro_factory) -> threading.Thread:
    thread = threading.Thread(target=lambda: asyncio.run(coro_factory()))
    thread.start()
    return thread


def test_single_flight_holds_across_event_loops():
    """Sync ``Runner.run`` runs every turn on an event loop of its own."""
    coordinator, service, order = Coordinator(), RecordingService(), []
    started, release = threading.Event(), threading.Event()

    async def blocked(app, view, writer):
        order.append("first starts")
        started.set()
        await asyncio.get_running_loop().run_in_executor(None, release.wait)
        order.append("first ends")

    async def quick(app, view, writer):
        order.append("second starts")

    async def first_turn():
        await coordinator.submit(None, session(), service, blocked)

    async def second_turn():
        await coordinator.submit(None, session(), service, quick)

    first = _in_new_loop_thread(first_turn)
    assert started.wait(30)
    second = _in_new_loop_thread(second_turn)
    release.set()
    first.join(30)
    second.join(30)
    assert order == ["first starts", "first ends", "second starts"]


def test_a_loop_closed_under_a_compaction_does_not_block_the_next():
    coordinator, service, ran = Coordinator(), RecordingService(), []
    abandoned = asyncio.new_event_loop()

    async def never_finishes(app, view, writer):
        await asyncio.Event().wait()

    async def submit_and_leave():
        coordinator.submit(None, session(), service, never_finishes)
        await asyncio.sleep(0)

    abandoned.run_until_complete(submit_and_leave())
    abandoned.close()  # without cancelling its tasks

    async def next_compaction():
        async def record(app, view, writer):
            ran.append(True)

        await asyncio.wait_for(
            coordinator.submit(None, session(), service, record), timeout=30
        )

    asyncio.run(next_compaction())
    assert ran == [True]


@pytest.mark.asyncio
async def test_bookkeeping_returns_to_nothing_when_sessions_go_idle():
    coordinator, service = Coordinator(), RecordingService()

    async def nothing(app, view, writer):
        await asyncio.sleep(0)

    tasks = []
    for n in range(200):
        key = coordinator.turn_started(service, "app", "u", f"s{n}")
        loaded = Session(id=f"s{n}", app_name="app", user_id="u")
        coordinator.session_loaded(service, loaded)
        tasks.append(coordinator.submit(None, loaded, service, nothing))
        coordinator.turn_ended(key)
    assert coordinator.tracked_sessions() == 200
    await asyncio.gather(*tasks)
    assert coordinator.tracked_sessions() == 0
    assert coordinator.pending() == 0


@pytest.mark.asyncio
async def test_a_queued_compaction_sees_the_events_its_turn_ended_with():
    # 1.24-1.27 reload a stale Session's events from storage when a write goes
    # through it: a queued compaction must not summarize what its turn never
    # saw (the next turn's first events, half an invocation).
    from google.adk.events.event import Event

    coordinator, service, seen = Coordinator(), RecordingService(), []
    first_may_finish = asyncio.Event()
    turn = session()
    turn.events.append(Event(author="user", invocation_id="1"))

    async def first(app, view, writer):
        await first_may_finish.wait()

    async def second(app, view, writer):
        seen.extend(e.invocation_id for e in view.events)

    coordinator.submit(None, session(), service, first)
    done = coordinator.submit(None, turn, service, second)
    turn.events.append(Event(author="user", invocation_id="2"))  # a reload
    first_may_finish.set()
    await asyncio.wait_for(done, timeout=30)
    assert seen == ["1"]
