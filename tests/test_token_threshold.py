"""Request-time (token-threshold) compaction never fails a turn (issue #24).

From 1.26 a compaction request processor runs before each model call: once
the prompt crosses ``token_threshold`` it summarizes all but the last
``event_retention_size`` events and appends the summary through the turn's
``Session`` (docs/compaction-triggers.md). If the previous turn's summary
landed after this turn read the session, released google-adk rejects that
append as stale and the turn fails (1.24-1.27's ``DatabaseSessionService``
reloads and writes anyway). The package catches it up like any write of a
turn: only summaries moved storage.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from google.adk.agents import LlmAgent
from google.adk.apps.app import App, EventsCompactionConfig
from google.adk.apps.llm_event_summarizer import LlmEventSummarizer
from google.adk.runners import Runner
from packaging.version import Version

from adk_compaction_backport._activation import installed_adk_version
from adk_compaction_backport._coordinator import COORDINATOR
from adk_compaction_backport._rewinds import live_events
from adk_compaction_backport.verify.fake_model import APP_NAME, EchoModel, SummaryModel
from harness import CLAIMED_ONLY, Conversation, background_work_done
from test_leak import invocation_of, last_prompt, removed_from, summaries_in
from test_race_awaited import race_where
from test_runner_writes import rewind, summary_landed, watched_conversation

pytestmark = [
    CLAIMED_ONLY,
    pytest.mark.skipif(
        Version(installed_adk_version() or "0") < Version("1.26"),
        reason="no request-time compaction before google-adk 1.26",
    ),
]


def token_app(chat: Conversation) -> App:
    """Compaction by tokens only: the fake model reports a 1-token prompt, so
    every check is over the threshold; the sliding window never fills."""
    agent = LlmAgent(
        name="assistant",
        model=EchoModel(),
        instruction="Answer briefly.",
        output_key="last_reply",
    )
    return App(
        name=APP_NAME, root_agent=agent, events_compaction_config=tokens_only(chat)
    )


def tokens_only(chat: Conversation) -> EventsCompactionConfig:
    """Compaction by tokens only (a 1-token threshold; the sliding window of
    100 invocations never fills), summarized by the chat's gated model."""
    return EventsCompactionConfig(
        summarizer=LlmEventSummarizer(llm=SummaryModel(control=chat.control)),
        compaction_interval=100,
        overlap_size=0,
        token_threshold=1,
        event_retention_size=1,
    )


async def token_conversation(database: Any) -> Conversation:
    chat = await watched_conversation(database)
    chat.app = token_app(chat)
    chat.runner = Runner(app=chat.app, session_service=chat.service)
    return chat


async def second_turn_read_before_the_first_summary_landed(chat: Conversation) -> None:
    """Turn 1's summary is held until turn 2 has read the session, then lands;
    turn 2 then runs to its end (its request-time compaction included)."""
    # Turn 1: its request (one event) is within the retention; after it,
    # two events are: the post-invocation token compaction summarizes one.
    gate = chat.control.hold()
    await chat.client_turn()
    await chat.control.wait_for_calls(1)
    resume = asyncio.Event()
    chat.service.pause_next_read = resume
    second = asyncio.ensure_future(chat.turn())
    await chat.service.read_done.wait()  # turn 2 holds a pre-summary session

    chat.control.gate = None  # turn 2's own summarizer call answers at once
    gate.set()
    await summary_landed(chat)
    resume.set()
    await second  # released google-adk: its request-time summary is stale
    await chat.finish()
    await background_work_done()


@race_where(">=1.28", held_read=True)
@pytest.mark.asyncio
async def test_a_request_time_summary_after_the_previous_turns_summary(database):
    chat = await token_conversation(database)
    await second_turn_read_before_the_first_summary_landed(chat)

    assert chat.control.calls >= 2
    assert "summary #2" in last_prompt(chat)  # turn 2's model saw its summary
    stored = await chat.stored()
    replies = [e for e in stored.events if e.author == "assistant"]
    assert len(replies) == 2


@race_where(">=1.28")
@pytest.mark.asyncio
async def test_a_request_time_summary_builds_on_the_summary_in_flight(
    database, monkeypatch
):
    """Turn 2 starts while turn 1's summary is being computed (an eager
    client); its request-time compaction is due. It does not summarize turn 1's
    events again: it waits for that summary and builds on it (upstream's
    rolling seed). Before, with the package, it summarized them from its own
    read: two summarizer calls over one range, the first one then dropped as
    reaching no further (issue #24). Released 1.39.1: turn 1's summary write is
    stale; 2.13.0 discards it."""
    chat = await token_conversation(database)
    waits = asyncio.Event()
    real_wait = COORDINATOR.wait_for_session

    async def spied_wait(*args: Any) -> None:
        waits.set()  # turn 2 waits for turn 1's summary
        await real_wait(*args)

    monkeypatch.setattr(COORDINATOR, "wait_for_session", spied_wait)
    gate = chat.control.hold()
    await chat.client_turn()
    await chat.control.wait_for_calls(1)
    chat.control.gate = None  # later summarizer calls answer at once
    second = asyncio.ensure_future(chat.turn())
    repeated = asyncio.ensure_future(chat.control.wait_for_calls(2))
    waiting = asyncio.ensure_future(waits.wait())
    await asyncio.wait([repeated, waiting], return_when=asyncio.FIRST_COMPLETED)
    gate.set()
    waiting.cancel()
    await second
    await chat.finish()
    await repeated  # the rolling summary on top of turn 1's is call 2
    await background_work_done()

    texts = summaries_in(await chat.stored())
    second_summary = [text for text in texts if text.startswith("summary #2")]
    assert second_summary, f"no request-time summary in turn 2: {texts}"
    assert "summary #1" in second_summary[0], "turn 1's events summarized again"
    assert any(text.startswith("summary #1") for text in texts)


@race_where(">=1.26,<2.5")
@pytest.mark.asyncio
async def test_a_request_time_summary_leaves_an_undone_turn_out(database):
    """Turn 2 is undone; turn 3's request-time compaction summarizes what is
    older than its last event. Released 1.26 - 2.4 pick those from every stored
    event, the undone turn's included (2.5 leaves rewound events out), and the
    summary brings turn 2 back into turn 3's prompt."""
    chat = await token_conversation(database)
    await chat.turn()
    await chat.turn()
    await background_work_done()
    await rewind(chat, await invocation_of(chat, 2))
    calls = chat.control.calls
    await chat.turn()  # turn 3
    await background_work_done()

    assert chat.control.calls > calls, "no compaction ran in turn 3"
    assert "s0 turn 3" in last_prompt(chat)
    assert removed_from(last_prompt(chat), 2)
    live = SimpleNamespace(events=live_events((await chat.stored()).events))
    assert all(removed_from(text, 2) for text in summaries_in(live))
