"""``InMemorySessionService``: upstream's behaviour, plus what the package fixes.

It has no stale-session check, so the race of the persistent services does
not exist here; what the package must still do is keep compaction tasks
(1.16-1.18 drop them), let sync ``Runner.run`` store its summary before its
event loop closes (1.16-1.18), keep each range summarized once, and never
store a summary in a session created again with the same id.
"""

from __future__ import annotations

import asyncio

import pytest

from _postgres import Database
from adk_compaction_backport.verify.fake_model import SummarizerControl
from adk_compaction_backport.verify.scenario import USER_ID
from harness import (
    CLAIMED_ONLY,
    ONLY_1_16,
    Conversation,
    background_work_done,
    fix_under_test,
)

MEMORY = Database(kind="memory", raw="")

pytestmark = [
    pytest.mark.skipif(
        fix_under_test() == "upstream-patch",
        reason="covers the package's own behaviour",
    ),
    CLAIMED_ONLY,
]


@ONLY_1_16
@pytest.mark.race
def test_sync_run_stores_the_summary_before_it_returns():
    async def start() -> Conversation:
        return await Conversation(MEMORY).start()

    chat = asyncio.run(start())
    chat.control.delay = 0.05  # the summary is still being computed as the turn ends
    chat.sync_turn()
    chat.sync_turn()

    assert asyncio.run(chat.summary_ranges()) == [(1, 2)]


@pytest.mark.asyncio
async def test_client_turns_store_every_summary_once():
    chat = await Conversation(MEMORY).start()
    gate = await chat.turns_with_summarizer_held(2)
    await chat.client_turn()
    await chat.client_turn()  # compacts 2-4 once 1-2 has landed
    gate.set()
    await chat.finish()
    await background_work_done()

    assert await chat.summary_ranges() == [(1, 2), (2, 4)]
    assert chat.control.calls == 2


@pytest.mark.asyncio
async def test_a_session_created_again_gets_no_summary_of_the_old_one():
    chat = await Conversation(MEMORY, SummarizerControl(echo=True)).start()
    gate = await chat.turns_with_summarizer_held(2)
    await chat.service.delete_session(
        app_name=chat.app.name, user_id=USER_ID, session_id=chat.session_id
    )
    await chat.start()
    await chat.client_turn()

    gate.set()
    await chat.finish()
    await background_work_done()
    stored = await chat.stored()
    assert [e for e in stored.events if e.actions.compaction] == []
