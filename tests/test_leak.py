"""A summary is stored only in the conversation it summarizes (issue #10).

While a summary is being computed (the fake summarizer held on an
``asyncio.Event``), the session is deleted and created again with the same id,
rewound, deleted for good, or edited by another process. Then the summarizer
answers. Storage must hold no summary of the removed events, and the next
model request must show none of their text. The summarizer quotes what it
summarized (``echo``), so its text would give a leak away.

Released google-adk drops these summaries as stale (mostly); before this rule
the package wrote them through the newest ``Session`` or a fresh read of the
new conversation.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from typing import Any, List

import pytest
from google.adk.runners import Runner

from adk_compaction_backport._compaction_events import compaction_of
from adk_compaction_backport.verify.fake_model import SummarizerControl
from adk_compaction_backport.verify.scenario import USER_ID
from harness import (
    CLAIMED_ONLY,
    KEEPING_SUMMARIES_ONLY,
    Conversation,
    background_work_done,
)

pytestmark = [CLAIMED_ONLY]
REWIND = pytest.mark.skipif(
    not hasattr(Runner, "rewind_async"), reason="no Runner.rewind_async here"
)


def summaries_in(session: Any) -> List[str]:
    """The text of every summary stored in ``session``."""
    texts = []
    for event in session.events:
        compaction = compaction_of(event)
        if compaction is not None:
            content = compaction.compacted_content
            texts.append(" ".join(p.text or "" for p in content.parts or []))
    return texts


def last_prompt(chat: Conversation) -> str:
    return "\n".join(chat.last_prompt())


def dropped_warnings(caplog: pytest.LogCaptureFixture, session_id: str) -> List[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING
        and session_id in r.getMessage()
        and "dropped" in r.getMessage().lower()  # the package's or the series' words
    ]


async def chat_with_summary_held(database: Any) -> tuple:
    """Two turns ("s0 turn 1", "s0 turn 2"); the summary of both is held."""
    chat = await Conversation(database, SummarizerControl(echo=True)).start()
    gate = await chat.turns_with_summarizer_held(2)
    return chat, gate


async def delete(chat: Conversation) -> None:
    await chat.service.delete_session(
        app_name=chat.app.name, user_id=USER_ID, session_id=chat.session_id
    )


async def release(chat: Conversation, gate: asyncio.Event) -> None:
    gate.set()
    await chat.finish()  # no stream ends in an error
    await background_work_done()


def removed_from(text: str, *turns: int) -> bool:
    return all(f"s0 turn {n}" not in text for n in turns)


@KEEPING_SUMMARIES_ONLY
@pytest.mark.asyncio
async def test_a_session_created_again_gets_no_summary_of_the_old_one(database, caplog):
    caplog.set_level(logging.WARNING)
    chat, gate = await chat_with_summary_held(database)
    await delete(chat)
    await chat.start()  # "clear chat": same id, a new conversation
    await chat.client_turn()  # turn 3, the new conversation's first

    await release(chat, gate)
    assert summaries_in(await chat.stored()) == []
    assert dropped_warnings(caplog, chat.session_id)

    await chat.turn()  # the new conversation's second turn
    assert "s0 turn 3" in last_prompt(chat)
    assert removed_from(last_prompt(chat), 1, 2)
    assert "summary #1" not in last_prompt(chat)
    await background_work_done()
    assert all(removed_from(s, 1, 2) for s in summaries_in(await chat.stored()))


@KEEPING_SUMMARIES_ONLY
@REWIND
@pytest.mark.asyncio
async def test_a_rewound_turn_is_never_summarized_back_into_the_prompt(
    database, caplog
):
    caplog.set_level(logging.WARNING)
    chat, gate = await chat_with_summary_held(database)
    await chat.runner.rewind_async(
        user_id=USER_ID,
        session_id=chat.session_id,
        rewind_before_invocation_id=await invocation_of(chat, 2),
    )
    await chat.client_turn()  # turn 3 right after the rewind

    await release(chat, gate)
    assert all(removed_from(s, 2) for s in summaries_in(await chat.stored()))
    assert dropped_warnings(caplog, chat.session_id)

    await chat.turn()
    assert "s0 turn 3" in last_prompt(chat)
    assert removed_from(last_prompt(chat), 2)
    await background_work_done()
    assert all(removed_from(s, 2) for s in summaries_in(await chat.stored()))


@REWIND
@pytest.mark.asyncio
async def test_compaction_after_a_rewind_leaves_the_rewound_turn_out(database):
    """1.x compaction summarizes rewound turns; prompts then show their text."""
    chat = await Conversation(database, SummarizerControl(echo=True)).start()
    for _ in range(3):
        await chat.turn()  # a summary of turns 1-2 after turn 2
    await background_work_done()
    await chat.runner.rewind_async(
        user_id=USER_ID,
        session_id=chat.session_id,
        rewind_before_invocation_id=await invocation_of(chat, 3),
    )
    await chat.turn()  # turn 4: turn 3 no longer counts
    await background_work_done()
    await chat.turn()

    assert "s0 turn 5" in last_prompt(chat)
    assert removed_from(last_prompt(chat), 3)
    await background_work_done()
    assert all(removed_from(s, 3) for s in summaries_in(await chat.stored()))


async def invocation_of(chat: Conversation, turn: int) -> str:
    """The invocation id of the user's ``turn``-th message in storage."""
    session = await chat.stored()
    messages = [e for e in session.events if e.author == "user" and e.content]
    return messages[turn - 1].invocation_id


@KEEPING_SUMMARIES_ONLY
@pytest.mark.asyncio
async def test_a_deleted_session_gets_no_summary(database, caplog):
    caplog.set_level(logging.WARNING)
    chat, gate = await chat_with_summary_held(database)
    await delete(chat)
    rows_left = count_event_rows(chat)  # SQLite keeps them: no foreign keys on

    await release(chat, gate)
    assert await chat.stored() is None
    assert count_event_rows(chat) == rows_left  # nothing written for it
    assert dropped_warnings(caplog, chat.session_id)
    assert "Task exception was never retrieved" not in caplog.text


@KEEPING_SUMMARIES_ONLY
@pytest.mark.asyncio
async def test_events_removed_by_another_process_are_not_summarized_back(
    database, caplog
):
    caplog.set_level(logging.WARNING)
    chat, gate = await chat_with_summary_held(database)
    turn_two = await invocation_of(chat, 2)
    run_sql(chat, "DELETE FROM events WHERE invocation_id = :value", turn_two)

    await release(chat, gate)
    assert summaries_in(await chat.stored()) == []
    assert dropped_warnings(caplog, chat.session_id)

    await chat.turn()
    assert "s0 turn 1" in last_prompt(chat)
    assert removed_from(last_prompt(chat), 2)


_SQL_SCRIPT = """
import sys
import sqlalchemy
engine = sqlalchemy.create_engine(sys.argv[1])
with engine.begin() as connection:
    result = connection.execute(sqlalchemy.text(sys.argv[2]), {"value": sys.argv[3]})
    print(result.scalar() if result.returns_rows else result.rowcount)
"""


def run_sql(chat: Conversation, statement: str, value: str) -> str:
    """Run ``statement`` in another process, as another writer of the database."""
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            _SQL_SCRIPT,
            chat.database.url("sync"),
            statement,
            value,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def count_event_rows(chat: Conversation) -> int:
    return int(
        run_sql(
            chat,
            "SELECT count(*) FROM events WHERE session_id = :value",
            chat.session_id,
        )
    )
