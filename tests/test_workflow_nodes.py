"""A workflow node's request-time summary never fails its turn (#6691, issue #24).

On 2.x a ``Workflow`` runs single-turn ``LlmAgent`` nodes through the LLM
flow, so request-time (token-threshold) compaction runs inside a node. Through
2.7.1 the node wrote through a shallow copy of the parent's ``Session``: its
summary moved storage's revision on the copy only, and the parent's next
append was rejected as stale. 2.8 shares the parent's ``Session``; the package
gives 2.2 - 2.7.1 the same (``families/_workflow_nodes.py``).
"""

from __future__ import annotations

from typing import Any, List

import pytest
from google.adk.agents import LlmAgent
from google.adk.apps.app import App
from google.adk.runners import Runner
from packaging.version import Version

from adk_compaction_backport._activation import installed_adk_version
from adk_compaction_backport._compaction_events import compaction_of
from adk_compaction_backport.verify.fake_model import APP_NAME, EchoModel
from harness import CLAIMED_ONLY, Conversation, background_work_done
from test_race_awaited import race_where
from test_runner_writes import watched_conversation
from test_token_threshold import tokens_only

pytestmark = [
    CLAIMED_ONLY,
    pytest.mark.skipif(
        Version(installed_adk_version() or "0") < Version("2.2"),
        reason="no workflows that compact before google-adk 2.2",
    ),
]

TURNS = 3


def node(name: str) -> LlmAgent:
    return LlmAgent(
        name=name, model=EchoModel(), instruction="Answer briefly.", mode="single_turn"
    )


def workflow_app(chat: Conversation) -> App:
    """START -> first -> second; the fake model reports a 1-token prompt, so
    every node's request is over the threshold (request-time compaction runs
    inside the node); the sliding window never fills."""
    from google.adk.workflow import START, Workflow

    pipeline = Workflow(name="pipeline", edges=[(START, node("first"), node("second"))])
    return App(
        name=APP_NAME, root_agent=pipeline, events_compaction_config=tokens_only(chat)
    )


def ranges(events: List[Any]) -> List[tuple]:
    found = (compaction_of(e) for e in events)
    return [(c.start_timestamp, c.end_timestamp) for c in found if c is not None]


@race_where(">=2.2,<2.8")
@pytest.mark.asyncio
async def test_a_node_summary_does_not_make_the_parents_next_write_stale(database):
    chat = await watched_conversation(database)
    chat.app = workflow_app(chat)
    chat.runner = Runner(app=chat.app, session_service=chat.service)
    for _ in range(TURNS):
        # Released 2.2 - 2.7.1: the parent's write after the first node's
        # summary raises the stale-session error out of the stream.
        events = await chat.turn()
        assert {"first", "second"} <= {e.author for e in events}
    await background_work_done()

    stored = (await chat.stored()).events
    replies = [e.author for e in stored if e.author in ("first", "second")]
    assert replies == ["first", "second"] * TURNS  # no node failed or was lost
    summaries = ranges(stored)
    assert summaries, "no node's request-time compaction ran"
    assert len(set(summaries)) == len(summaries)  # each range stored once
    # One summarizer call per summary: on 2.2 - 2.7.x the token check after the
    # invocation summarized again (the node's mark stayed on its copy of the
    # context), and that summary, covering node inputs, was dropped.
    assert chat.control.calls == len(summaries)
