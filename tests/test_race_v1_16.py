"""Races of google-adk 1.16-1.18, staged deterministically on real databases.

Tests marked ``race`` fail on unpatched google-adk (``test_unpatched_proof.py``
runs them with the fix turned off and checks that each one fails).
"""

from __future__ import annotations

import asyncio
import gc
import logging

import pytest

import adk_compaction_backport as acb
from adk_compaction_backport._activation import installed_adk_version
from adk_compaction_backport._coordinator import COORDINATOR
from adk_compaction_backport._guards import family_for
from adk_compaction_backport.verify.scenario import USER_ID
from harness import (
    OTHER_FAMILY,
    Conversation,
    assert_late_summary_in_place,
    background_work_done,
    fix_under_test,
)

pytestmark = pytest.mark.skipif(
    getattr(family_for(installed_adk_version()), "name", None) != "1.16",
    reason=OTHER_FAMILY + "google-adk 1.16-1.18 only",
)
BACKPORT = fix_under_test() != "upstream-patch"
backport_only = pytest.mark.skipif(
    not BACKPORT, reason="covers what only the backport package does"
)


def assert_idle() -> None:
    """Nothing pending, no per-session bookkeeping left behind."""
    if not BACKPORT:
        return
    assert COORDINATOR.pending() == 0
    assert COORDINATOR.tracked_sessions() == 0


@pytest.mark.race
@pytest.mark.asyncio
async def test_summary_survives_a_next_turn_that_writes_state(database, caplog):
    chat = await Conversation(database).start()
    gate = await chat.turns_with_summarizer_held(2)  # summary of 1-2 is waiting
    await chat.next_write_is_newer()
    await chat.turn()  # writes state (output_key): storage moves past turn 2
    gate.set()
    await background_work_done()
    gc.collect()

    assert await chat.summary_ranges() == [(1, 2)]
    assert "Task exception was never retrieved" not in caplog.text
    assert_idle()


@pytest.mark.race
@pytest.mark.asyncio
async def test_next_compaction_waits_for_the_previous_one_and_builds_on_it(database):
    chat = await Conversation(database).start()
    # Compactions after turns 2 and 4; the first is held in the summarizer.
    gate = await chat.turns_with_summarizer_held(4)
    gate.set()
    await background_work_done()

    assert await chat.summary_ranges() == [(1, 2), (2, 4)]
    assert chat.control.calls == 2
    assert_idle()


@backport_only
@pytest.mark.race
@pytest.mark.asyncio
async def test_stream_closed_right_after_the_final_reply_is_still_compacted(database):
    chat = await Conversation(database).start()
    await chat.turn()
    stream = chat.stream()
    async for event in stream:
        if event.is_final_response():
            break
    await stream.aclose()
    await background_work_done()

    assert await chat.summary_ranges() == [(1, 2)]


@pytest.mark.race
@pytest.mark.asyncio
async def test_summarizer_failure_is_logged_with_the_session_and_spares_turns(
    database, caplog
):
    chat = await Conversation(database).start()
    chat.control.fail = True
    caplog.set_level(logging.WARNING)
    for _ in range(3):
        await chat.turn()
    await background_work_done()
    gc.collect()
    await asyncio.sleep(0)

    assert any(
        "compaction" in r.getMessage().lower() and chat.session_id in r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.WARNING
    )
    assert "Task exception was never retrieved" not in caplog.text
    assert len((await chat.stored()).events) == 6  # 3 user messages, 3 replies


@pytest.mark.race
def test_sync_run_stores_the_summary_before_it_returns(database):
    chat = asyncio.run(Conversation(database).start())
    chat.control.delay = 0.05  # the summary is still being written as the turn ends
    chat.sync_turn()
    chat.sync_turn()

    assert asyncio.run(chat.summary_ranges()) == [(1, 2)]


@pytest.mark.asyncio
async def test_next_turn_does_not_wait_for_the_summarizer(database):
    chat = await Conversation(database).start()
    gate = await chat.turns_with_summarizer_held(2)
    # The summarizer never answers until released: the next turn must not care.
    replies = await asyncio.wait_for(chat.turn(), timeout=60)
    assert replies[-1].is_final_response()
    gate.set()
    await background_work_done()
    assert await chat.summary_ranges() == [(1, 2)]


@pytest.mark.asyncio
async def test_turns_after_a_stored_summary_work_and_see_it_typed(database):
    """google/adk-python#3487: 1.18 returned stored compactions as dicts."""
    from google.adk.events.event_actions import EventCompaction

    chat = await Conversation(database).start()
    await chat.turn()
    await chat.turn()
    await background_work_done()
    stored = [e for e in (await chat.stored()).events if e.actions.compaction]
    assert stored and isinstance(stored[0].actions.compaction, EventCompaction)

    await chat.turn()
    await chat.turn()
    await background_work_done()
    assert await chat.summary_ranges() == [(1, 2), (2, 4)]


def test_the_fix_under_test_is_on():
    if BACKPORT:
        assert acb.status().applied, acb.status().reason
    else:  # google-adk built from patches/: the package must stay out of the way
        assert not acb.status().applied


@backport_only
@pytest.mark.asyncio
async def test_one_sessions_compaction_never_delays_another(database):
    held = await Conversation(database).start()
    gate = await held.turns_with_summarizer_held(2)

    other = await Conversation(database, session_id="another").start()
    await other.turn()
    await other.turn()
    await asyncio.wait_for(  # the held session's summarizer is still waiting
        COORDINATOR.wait_for_session(
            other.service, other.app.name, USER_ID, other.session_id
        ),
        timeout=60,
    )
    assert await other.summary_ranges() == [(1, 2)]
    assert await held.summary_ranges() == []

    gate.set()
    await background_work_done()
    assert await held.summary_ranges() == [(1, 2)]


@backport_only
@pytest.mark.race
@pytest.mark.asyncio
async def test_a_new_runner_and_service_per_request_still_coordinate(database):
    chat = await Conversation(database).start()
    gate = await chat.turns_with_summarizer_held(2)
    # A web app that builds a fresh service and runner for every request.
    later = Conversation(database, control=chat.control)
    later.turns = chat.turns
    await later.turn()
    await later.turn()
    gate.set()
    await background_work_done()

    assert await chat.summary_ranges() == [(1, 2), (2, 4)]
    assert chat.control.calls == 2


@backport_only
def test_an_app_that_exits_right_after_a_turn_keeps_its_summary_with_drain(
    database, caplog
):
    async def two_turns_then_exit(drain: bool) -> Conversation:
        chat = await Conversation(database, session_id=f"drain-{drain}").start()
        chat.control.delay = 0.05
        await chat.turn()
        await chat.turn()
        if drain:
            assert await acb.drain() >= 1
        return chat

    caplog.set_level(logging.WARNING)
    chat = asyncio.run(two_turns_then_exit(drain=False))
    assert asyncio.run(chat.summary_ranges()) == []
    assert "was cancelled before its summary was stored" in caplog.text
    assert "Task was destroyed but it is pending" not in caplog.text

    chat = asyncio.run(two_turns_then_exit(drain=True))
    assert asyncio.run(chat.summary_ranges()) == [(1, 2)]


@backport_only
def test_a_hung_summarizer_is_abandoned_after_the_time_limit(
    database, caplog, monkeypatch
):
    monkeypatch.setattr(COORDINATOR, "time_limit", 0.5)
    caplog.set_level(logging.WARNING)
    chat = asyncio.run(Conversation(database).start())
    chat.control.delay = 3600  # a summarizer that never answers
    chat.sync_turn()
    chat.sync_turn()  # returns once its compaction is abandoned

    assert asyncio.run(chat.summary_ranges()) == []
    assert "was abandoned" in caplog.text
    assert len(asyncio.run(chat.stored()).events) == 4  # both turns stored


@pytest.mark.race
@pytest.mark.asyncio
async def test_a_late_summary_takes_the_place_of_its_range_in_the_context(database):
    chat = await Conversation(database).start()
    gate = await chat.turns_with_summarizer_held(2)
    await chat.next_write_is_newer()
    await chat.turn()  # turn 3 is stored before the summary of turns 1-2
    gate.set()
    await background_work_done()
    await chat.turn()

    assert_late_summary_in_place(chat.last_prompt())
