"""Writes the Runner makes for the app never fail because a summary landed.

Issue #24: a rewind, and a turn's ``state_delta``.

``Runner.rewind_async`` (1.17+) reads the session and appends a rewind event,
outside any turn. A chat front end's "undo" sends it right after a final
reply, while that turn's summary is still being computed: if the summary lands
between the rewind's read and its write, released google-adk rejects the
rewind as stale (from 1.20, where every append moves the session's revision;
1.24-1.27's ``DatabaseSessionService`` reloads and writes anyway). The package
catches the rewind up under a turn's rule: only summaries moved storage, so it
is retried; another turn's write stays upstream's error.

``run_async(state_delta=...)`` stores the delta on the turn's first event (the
user's message): a turn that read the session before a summary landed is
caught up like any other turn, and its delta is stored.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any, Optional

import pytest
from google.adk.runners import Runner
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from adk_compaction_backport._activation import installed_adk_version
from adk_compaction_backport._compaction_events import compaction_of
from adk_compaction_backport._rewinds import live_events
from adk_compaction_backport.verify.fake_model import SummarizerControl
from adk_compaction_backport.verify.scenario import USER_ID, message
from harness import (
    CLAIMED_ONLY,
    REWINDS_ONLY,
    Conversation,
    _read_to_the_end,
    background_work_done,
    service_class,
)
from test_leak import invocation_of, last_prompt, removed_from, summaries_in
from test_race_awaited import Pausing, race_where

adk_release = Version(installed_adk_version() or "0")
pytestmark = [
    CLAIMED_ONLY,
    REWINDS_ONLY,
]
# Where released google-adk rejects a rewind that read before a summary landed:
# appends move the revision from 1.20 (before, only state writes do), and
# 1.24-1.27's DatabaseSessionService reloads a stale session instead.
race_where_a_summary_makes_it_stale = race_where(">=1.20,<1.24", ">=1.28")


class Watching(Pausing):
    """Holds the next read, or the next rewind's write, on request; tells when
    a summary was stored."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.summary_stored = asyncio.Event()
        self.pause_next_rewind: Optional[asyncio.Event] = None
        self.rewind_waits = asyncio.Event()

    async def append_event(self, session: Any, event: Any) -> Any:
        resume = self.pause_next_rewind
        if resume is not None and event.actions.rewind_before_invocation_id:
            self.pause_next_rewind = None
            self.rewind_waits.set()  # made (and stamped), not written yet
            await resume.wait()
        stored = await super().append_event(session=session, event=event)
        if compaction_of(event) is not None:
            self.summary_stored.set()
        return stored


async def watched_conversation(database: Any) -> Conversation:
    chat = Conversation(database, SummarizerControl(echo=True))
    base, arguments = service_class(database)
    chat.service = type(f"Watching{base.__name__}", (Watching, base), {})(**arguments)
    chat.runner = Runner(app=chat.app, session_service=chat.service)
    return await chat.start()


def rewind(chat: Conversation, invocation_id: str) -> Any:
    return chat.runner.rewind_async(
        user_id=USER_ID,
        session_id=chat.session_id,
        rewind_before_invocation_id=invocation_id,
    )


async def undo_turn_two_while_its_summary_is_held(
    chat: Conversation,
) -> tuple:
    """Turns 1-2 read as a client does; the rewind of turn 2 has read the
    session and waits; the summary of turns 1-2 is still held. Returns the
    summarizer's gate, the rewind's resume event and the rewind task."""
    gate = await chat.turns_with_summarizer_held(2)
    turn_two = await invocation_of(chat, 2)
    resume = asyncio.Event()
    chat.service.pause_next_read = resume
    undo = asyncio.ensure_future(rewind(chat, turn_two))
    await chat.service.read_done.wait()
    return gate, resume, undo


async def summary_landed(chat: Conversation) -> None:
    await asyncio.wait_for(chat.service.summary_stored.wait(), timeout=60)


async def turn_two_is_gone_from_the_next_prompt(chat: Conversation) -> None:
    await chat.turn()  # turn 3
    assert "s0 turn 3" in last_prompt(chat)
    assert removed_from(last_prompt(chat), 2)
    await background_work_done()
    # A summary stored before the rewind (of turns 1-2) stays in storage, and
    # the rewind removes it with turn 2: no summary still counting has turn 2.
    live = live_events((await chat.stored()).events)
    assert all(removed_from(s, 2) for s in summaries_in(SimpleNamespace(events=live)))


@race_where_a_summary_makes_it_stale
@pytest.mark.asyncio
async def test_a_summary_that_lands_between_the_rewinds_read_and_write(database):
    chat = await watched_conversation(database)
    gate, resume, undo = await undo_turn_two_while_its_summary_is_held(chat)

    gate.set()
    await summary_landed(chat)  # storage moved on after the rewind's read
    resume.set()
    await undo  # released google-adk: stale session
    await chat.finish()
    await background_work_done()
    stored = await chat.stored()
    assert any(e.actions.rewind_before_invocation_id for e in stored.events)
    assert chat.control.calls == 1
    await turn_two_is_gone_from_the_next_prompt(chat)


@pytest.mark.asyncio
async def test_a_summary_that_lands_just_before_the_rewinds_read(database):
    chat = await watched_conversation(database)
    gate = await chat.turns_with_summarizer_held(2)
    gate.set()
    await summary_landed(chat)

    await rewind(chat, await invocation_of(chat, 2))
    await chat.finish()
    await background_work_done()
    assert await chat.summary_ranges() == [(1, 2)]  # stored, then rewound
    await turn_two_is_gone_from_the_next_prompt(chat)


@pytest.mark.skipif(
    adk_release in SpecifierSet(">=1.24,<1.28"),
    reason="1.24-1.27 merge conflicting writes instead of rejecting them",
)
@pytest.mark.asyncio
async def test_a_rewind_that_another_turn_overtook_still_fails(database):
    if adk_release == Version("1.19.0") and database.kind == "sqlite":
        pytest.skip("1.19.0 on SQLite does not detect this conflict either")
    chat = await watched_conversation(database)
    gate, resume, undo = await undo_turn_two_while_its_summary_is_held(chat)
    gate.set()
    await summary_landed(chat)
    await chat.finish()
    await chat.next_write_is_newer()
    await chat.turn()  # turn 3 is stored after the rewind's read

    resume.set()
    with pytest.raises(ValueError, match=r"stale|modified in storage"):
        await undo
    await background_work_done()
    stored = await chat.stored()
    assert not any(e.actions.rewind_before_invocation_id for e in stored.events)


@pytest.mark.race
@pytest.mark.asyncio
async def test_a_summary_made_after_the_rewind_but_stored_before_it(database):
    """The rewind of turn 2 is made (and stamped) before the summary of turns
    1-2, and written after it. Released google-adk: the rewind is stale (1.20+
    except 1.24-1.27), or it is stored with its early stamp, before the summary
    in storage order, so the summary still counts and brings turn 2 back (1.17
    - 1.18, where a summary does not move ``update_time``, and 1.24 - 1.27)."""
    chat = await watched_conversation(database)
    gate = await chat.turns_with_summarizer_held(2)
    resume = asyncio.Event()
    chat.service.pause_next_rewind = resume
    undo = asyncio.ensure_future(rewind(chat, await invocation_of(chat, 2)))
    await chat.service.rewind_waits.wait()

    gate.set()
    await summary_landed(chat)  # made after the rewind event, stored first
    resume.set()
    await undo
    await chat.finish()
    await background_work_done()
    assert chat.control.calls == 1
    await turn_two_is_gone_from_the_next_prompt(chat)


@race_where(">=1.20,<1.24", ">=1.28", held_read=True)
@pytest.mark.asyncio
async def test_a_state_delta_turn_that_read_before_a_summary_landed(database):
    chat = await watched_conversation(database)
    gate = await chat.turns_with_summarizer_held(2)
    resume = asyncio.Event()
    chat.service.pause_next_read = resume
    third = asyncio.ensure_future(
        _read_to_the_end(
            chat.runner.run_async(
                user_id=USER_ID,
                session_id=chat.session_id,
                new_message=message(0, 3),
                state_delta={"theme": "dark"},
            )
        )
    )
    await chat.service.read_done.wait()  # turn 3 holds a pre-summary session

    gate.set()
    await summary_landed(chat)
    resume.set()
    await third  # released google-adk: stale session on its first write
    await chat.finish()
    await background_work_done()
    stored = await chat.stored()
    assert stored.state["theme"] == "dark"
    assert await chat.summary_ranges() == [(1, 2)]
