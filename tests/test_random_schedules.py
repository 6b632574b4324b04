"""Random schedules of turns, eager turns and undos keep the guarantees (issue #24).

Each schedule interleaves, over a few sessions, sequential turns, eager turns
(the next message goes out at the final reply, while the stream and its
compaction are still open) and undos (an eager turn, then
``Runner.rewind_async`` of it right after its final reply, as a chat front
end's "undo" button sends it). Compaction runs by the sliding window and, in
the ``window+tokens`` schedules, also by ``token_threshold``: the agent's
model reports the number of contents it was shown as
``usage_metadata.prompt_token_count``, so the threshold is crossed now and
then, after an invocation and at request time (1.26+).

After each schedule it asserts what README "Guarantees" promises: no turn or
rewind failed, every user message is stored, no stored summary still counting
quotes a rewound turn, and no prompt after an undo shows the undone turn's
text. With the sliding window alone, also: no invocation range is summarized
twice, and every summarizer call ends in one stored summary or a warning that
it was dropped. Request-time summaries are not coordinated with the package's
own (docs/compaction-triggers.md, "Not done yet"), so the ``window+tokens``
schedules do not assert those two.

Seeded: ``ADK_BACKPORT_SCHEDULE_SEED=7`` (or ``7,8,9``) runs those seeds
instead of the fixed default ones; a failure names its seed and schedule.
"""

from __future__ import annotations

import inspect
import logging
import os
import random
import re
from collections import Counter
from types import SimpleNamespace
from typing import Any, AsyncGenerator, Dict, List, Set

import pytest
from google.adk.apps import compaction
from google.adk.runners import Runner
from packaging.version import Version

from adk_compaction_backport._activation import installed_adk_version
from adk_compaction_backport._compaction_events import compaction_of
from adk_compaction_backport._rewinds import live_events, rewound_before
from adk_compaction_backport.verify.analysis import inspect_session
from adk_compaction_backport.verify.fake_model import EchoModel, SummarizerControl
from adk_compaction_backport.verify.scenario import USER_ID
from harness import CLAIMED_ONLY, KEEPS_EACH_SUMMARY, Conversation, background_work_done
from test_leak import dropped_warnings, summaries_in

pytestmark = [
    CLAIMED_ONLY,
    pytest.mark.skipif(
        not hasattr(Runner, "rewind_async"), reason="no Runner.rewind_async here"
    ),
    pytest.mark.skipif(
        Version(installed_adk_version() or "0") < Version("1.25"),
        reason="no EventsCompactionConfig.token_threshold before google-adk 1.25",
    ),
]

# Upstream's own compaction leaves rewound events out only in late 2.x
# releases (``_apply_rewinds`` in ``apps/compaction.py``; 2.13.0 has it,
# 1.39.1 not). Before those, with ``token_threshold`` set, a summary can still
# quote an undone turn and bring it back into the prompt (seen on 1.39.1 with
# the package, seed 2; most likely a request-time summary, which runs
# upstream's code inside the turn, not pinned down yet: issue #24, left open).
# The schedules report that as an expected failure there, after every other
# assertion has passed.
COMPACTION_APPLIES_REWINDS = "_apply_rewinds" in inspect.getsource(compaction)

SEED_VARIABLE = "ADK_BACKPORT_SCHEDULE_SEED"
DEFAULT_SEEDS = (1, 2)
SESSIONS = 2
STEPS = 16  # over all sessions
STEP_KINDS = ("turn", "eager", "undo")
TOKEN_THRESHOLD = 4  # contents in a prompt: crossed from a session's 3rd turn
RETENTION = 2


def seeds() -> List[int]:
    chosen = os.environ.get(SEED_VARIABLE, "").strip()
    if not chosen:
        return list(DEFAULT_SEEDS)
    return [int(seed) for seed in chosen.split(",") if seed.strip()]


class CountingEchoModel(EchoModel):
    """Reports as many prompt tokens as the request has contents."""

    async def generate_content_async(
        self, llm_request: Any, stream: bool = False
    ) -> AsyncGenerator[Any, None]:
        async for response in super().generate_content_async(llm_request, stream):
            response.usage_metadata.prompt_token_count = len(llm_request.contents or [])
            yield response


class ScheduledChat(Conversation):
    """A session of the schedule; remembers which turns were undone and which
    prompts came after each undo."""

    def __init__(self, database: Any, number: int, tokens: bool) -> None:
        super().__init__(database, SummarizerControl(echo=True), f"schedule-{number}")
        if tokens:
            self.app.root_agent.model = CountingEchoModel()
            config = self.app.events_compaction_config
            config.token_threshold = TOKEN_THRESHOLD
            config.event_retention_size = RETENTION
        self.undone: Dict[int, int] = {}  # turn -> prompts the model had seen by then

    @property
    def prompts(self) -> List[List[str]]:
        return self.app.root_agent.model.transcript

    async def step(self, kind: str) -> None:
        if kind == "turn":
            await self.turn()
            return
        await self.client_turn()
        if kind == "undo":  # right after the final reply, compaction in flight
            await self.runner.rewind_async(
                user_id=USER_ID,
                session_id=self.session_id,
                rewind_before_invocation_id=self.last_invocation_id,
            )
            self.undone[self.turns] = len(self.prompts)


def user_messages(events: List[Any]) -> List[str]:
    """The user's messages (a rewind event is the user's too, without content)."""
    return [
        e.content.parts[0].text
        for e in events
        if e.author == "user" and e.content and e.content.parts
    ]


def quotes(text: str, turns: Set[int]) -> List[int]:
    return [n for n in turns if re.search(rf"\bs0 turn {n}\b", text)]


async def check(chat: ScheduledChat, tokens: bool, caplog: Any) -> List[str]:
    """Assert what is promised; return where an undone turn came back."""
    stored = await chat.stored()
    live = SimpleNamespace(events=live_events(stored.events))
    undone = set(chat.undone)
    sent = [f"s0 turn {n}" for n in range(1, chat.turns + 1)]
    assert user_messages(stored.events) == sent, "a user message is lost"
    assert user_messages(live.events) == [
        f"s0 turn {n}" for n in range(1, chat.turns + 1) if n not in undone
    ], "an undo did not take"
    rewinds = [e for e in stored.events if rewound_before(e)]
    assert len(rewinds) == len(undone), "a rewind is lost"
    if not tokens and KEEPS_EACH_SUMMARY:
        ranges = inspect_session(live).summary_ranges
        twice = [r for r, n in Counter(ranges).items() if n > 1]
        assert not twice, f"invocation ranges summarized twice: {twice} in {ranges}"
        written = sum(1 for e in stored.events if compaction_of(e) is not None)
        dropped = len(dropped_warnings(caplog, chat.session_id))
        assert written <= chat.control.calls <= written + dropped, (
            f"{chat.control.calls} summarizer calls for {written} summaries stored"
            f" and {dropped} dropped"
        )
    leaks = [
        f"{chat.session_id}: a live summary quotes undone turns {quotes(text, undone)}"
        for text in summaries_in(live)
        if quotes(text, undone)
    ]
    for turn, seen in chat.undone.items():
        leaks += [
            f"{chat.session_id}: a prompt after the undo of turn {turn} shows it"
            for prompt in chat.prompts[seen:]
            if quotes("\n".join(prompt), {turn})
        ]
    return leaks


def schedule(seed: int) -> List[tuple]:
    """(session, step kind) pairs; every session starts with a plain turn."""
    pick = random.Random(seed)
    steps = [(n, "turn") for n in range(SESSIONS)]
    steps += [
        (pick.randrange(SESSIONS), pick.choice(STEP_KINDS))
        for _ in range(STEPS - SESSIONS)
    ]
    return steps


@pytest.mark.parametrize("compaction", ["window", "window+tokens"])
@pytest.mark.parametrize("seed", seeds())
@pytest.mark.asyncio
async def test_a_random_schedule_keeps_the_guarantees(
    database, seed, compaction, caplog
):
    caplog.set_level(logging.WARNING)
    tokens = compaction == "window+tokens"
    steps = schedule(seed)
    where = f"seed {seed} ({SEED_VARIABLE}={seed}), {compaction}, schedule {steps}"
    try:
        chats = [
            await ScheduledChat(database, n, tokens).start() for n in range(SESSIONS)
        ]
        for session, kind in steps:
            await chats[session].step(kind)
        for chat in chats:
            await chat.finish()
        await background_work_done()
        leaks = [leak for chat in chats for leak in await check(chat, tokens, caplog)]
    except Exception as error:
        raise AssertionError(f"{where}: {error!r}") from error
    if leaks and tokens and not COMPACTION_APPLIES_REWINDS:
        pytest.xfail(f"token-threshold summaries of undone turns (known gap): {leaks}")
    assert not leaks, f"{where}: {leaks}"
