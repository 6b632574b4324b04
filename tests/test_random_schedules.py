"""Random schedules of turns, eager turns and undos keep the guarantees (issue #24).

Each schedule interleaves, over a few sessions, sequential turns, eager turns
(the next message goes out at the final reply, while the stream and its
compaction are still open) and undos (an eager turn, then
``Runner.rewind_async`` of it right after its final reply, as a chat front
end's "undo" button sends it). Compaction runs by the sliding window and, in
the ``window+tokens`` schedules, also by ``token_threshold``: the agent's
model reports the number of contents it was shown as
``usage_metadata.prompt_token_count``, so the threshold is crossed now and
then, after an invocation and at request time (1.26+). The ``window``
schedules run wherever ``Runner.rewind_async`` exists (1.17+), the
``window+tokens`` ones from 1.25.

After each schedule it asserts what README "Guarantees" promises: no turn or
rewind failed, every user message is stored, no stored summary still counting
quotes a rewound turn, and no prompt after an undo shows the undone turn's
text; no range is summarized twice (``summarized_twice``), and every
summarizer call ends in one stored summary or a warning that it was dropped.

Seeded: ``ADK_BACKPORT_SCHEDULE_SEED=7`` (or ``7,8,9``) runs those seeds
instead of the fixed default ones; a failure names its seed and schedule.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import re
from collections import Counter
from types import SimpleNamespace
from typing import Any, Dict, List, Set, Tuple

import pytest
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from _workers import Worker
from adk_compaction_backport._activation import installed_adk_version
from adk_compaction_backport._compaction_events import compaction_of
from adk_compaction_backport._rewinds import live_events, rewound_before
from adk_compaction_backport.verify.analysis import inspect_session
from adk_compaction_backport.verify.fake_model import APP_NAME, SummarizerControl
from adk_compaction_backport.verify.scenario import USER_ID
from harness import (
    CLAIMED_ONLY,
    KEEPS_EACH_SUMMARY,
    REWINDS_ONLY,
    Conversation,
    background_work_done,
    engine_url,
    session_service,
    with_token_threshold,
)
from test_leak import dropped_warnings, summaries_in
from test_multiprocess import started  # noqa: F401 (a fixture: two workers)

ADK_RELEASE = Version(installed_adk_version() or "0")
pytestmark = [CLAIMED_ONLY, REWINDS_ONLY]
COMPACTIONS = [
    "window",
    pytest.param(
        "window+tokens",
        marks=pytest.mark.skipif(
            ADK_RELEASE not in SpecifierSet(">=1.25"),
            reason="no EventsCompactionConfig.token_threshold before google-adk 1.25",
        ),
    ),
]

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


class ScheduledChat(Conversation):
    """A session of the schedule; remembers which turns were undone and which
    prompts came after each undo."""

    def __init__(self, database: Any, number: int, tokens: bool) -> None:
        super().__init__(database, SummarizerControl(echo=True), f"schedule-{number}")
        if tokens:
            with_token_threshold(self.app, TOKEN_THRESHOLD, RETENTION)
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


def quotes(text: str, turns: Set[int], session: int = 0) -> List[int]:
    """Which of the session's ``turns`` ``text`` shows (``message()``'s words)."""
    return [n for n in sorted(turns) if re.search(rf"\bs{session} turn {n}\b", text)]


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
    if KEEPS_EACH_SUMMARY:
        twice = summarized_twice(live, tokens)
        assert not twice, f"ranges summarized twice: {twice}"
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


def summarized_twice(live: Any, tokens: bool) -> List[Any]:
    """Ranges that more than one live summary covers.

    The sliding window's are invocation ranges. A token-threshold summary ends
    at an event inside an invocation (``event_retention_size`` keeps the
    newest events out), so two of them ending in one invocation cover
    different events: theirs are compared by their exact bounds.
    """
    if tokens:
        ranges = [
            (c.start_timestamp, c.end_timestamp)
            for c in map(compaction_of, live.events)
            if c is not None
        ]
    else:
        ranges = inspect_session(live).summary_ranges
    return [r for r, n in Counter(ranges).items() if n > 1]


def schedule(seed: int, processes: int = 1) -> List[Tuple[int, str, int, int]]:
    """(session, step kind, process of the turn, process of the undo's rewind);
    every session starts with a plain turn."""
    pick = random.Random(seed)
    steps = [(n, "turn", n % processes, 0) for n in range(SESSIONS)]
    steps += [
        (
            pick.randrange(SESSIONS),
            pick.choice(STEP_KINDS),
            pick.randrange(processes),
            pick.randrange(processes),
        )
        for _ in range(STEPS - SESSIONS)
    ]
    return steps


@pytest.mark.parametrize("compaction", COMPACTIONS)
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
        for session, kind, _, _ in steps:
            await chats[session].step(kind)
        for chat in chats:
            await chat.finish()
        await background_work_done()
        leaks = [leak for chat in chats for leak in await check(chat, tokens, caplog)]
    except Exception as error:
        raise AssertionError(f"{where}: {error!r}") from error
    assert not leaks, f"{where}: {leaks}"


class SharedSession:
    """A session of a two-process schedule: what the client sent and undid."""

    def __init__(self, number: int) -> None:
        self.number = number
        self.session_id = f"schedule-{number}"
        self.turns = 0
        self.undone: Set[int] = set()

    def text(self) -> str:
        self.turns += 1
        return f"s{self.number} turn {self.turns}"

    def sent(self, live_only: bool = False) -> List[str]:
        return [
            f"s{self.number} turn {n}"
            for n in range(1, self.turns + 1)
            if not (live_only and n in self.undone)
        ]


def later_prompt_leaks(chat: SharedSession, prompts: List[List[str]]) -> List[str]:
    """Prompts of a later turn of ``chat`` that show one of its undone turns."""
    leaks = []
    for prompt in map("\n".join, prompts):
        shown = quotes(prompt, set(range(1, chat.turns + 1)), chat.number)
        for turn in quotes(prompt, chat.undone, chat.number):
            if any(n > turn for n in shown):
                leaks.append(
                    f"{chat.session_id}: a later prompt shows undone turn {turn}"
                )
    return leaks


@pytest.mark.multiprocess
@pytest.mark.parametrize("compaction", COMPACTIONS)
@pytest.mark.parametrize("seed", seeds())
@pytest.mark.asyncio(loop_scope="module")
async def test_a_random_schedule_over_two_processes_keeps_the_guarantees(
    started: List[Worker],  # noqa: F811
    database: Any,
    seed: int,
    compaction: str,
) -> None:
    """Each step goes to either process, as a load balancer without session
    affinity sends it; an undo's rewind too."""
    tokens = compaction == "window+tokens"
    steps = schedule(seed, processes=len(started))
    where = f"seed {seed} ({SEED_VARIABLE}={seed}), {compaction}, schedule {steps}"
    service = session_service(database)
    chats = [SharedSession(n) for n in range(SESSIONS)]
    try:
        for worker in started:
            await worker.call(
                "open",
                url=engine_url(database),
                echo=True,
                token_threshold=TOKEN_THRESHOLD if tokens else 0,
                event_retention_size=RETENTION,
            )
        for chat in chats:
            await service.create_session(
                app_name=APP_NAME, user_id=USER_ID, session_id=chat.session_id
            )
        tails = []
        for session, kind, process, rewinder in steps:
            chat, worker = chats[session], started[process]
            if kind == "turn":
                await worker.call("turn", session=chat.session_id, text=chat.text())
                continue
            tails.append(await worker.eager_turn(chat.session_id, chat.text()))
            if worker.last_invocation_id is None:
                await tails[-1]  # the turn ended without a final reply: its error
            if kind == "undo":  # right after the final reply
                await started[rewinder].call(
                    "rewind",
                    session=chat.session_id,
                    invocation=worker.last_invocation_id,
                )
                chat.undone.add(chat.turns)
        await asyncio.gather(*tails)
        for worker in started:
            await worker.call("drain")
        prompts = [p for worker in started for p in await worker.call("prompts")]
        calls = sum([await worker.call("calls") for worker in started])
        warnings = [w for worker in started for w in await worker.call("warnings")]
        dropped = sum("dropped" in line.lower() for line in warnings)
        written, leaks = 0, []
        for chat in chats:
            stored = await service.get_session(
                app_name=APP_NAME, user_id=USER_ID, session_id=chat.session_id
            )
            live = SimpleNamespace(events=live_events(stored.events))
            assert user_messages(stored.events) == chat.sent(), "a message is lost"
            assert user_messages(live.events) == chat.sent(live_only=True), (
                "an undo did not take"
            )
            rewinds = [e for e in stored.events if rewound_before(e)]
            assert len(rewinds) == len(chat.undone), "a rewind is lost"
            twice = summarized_twice(live, tokens)
            assert not KEEPS_EACH_SUMMARY or not twice, (
                f"ranges summarized twice: {twice}"
            )
            written += sum(1 for e in stored.events if compaction_of(e) is not None)
            leaks += [
                f"{chat.session_id}: a live summary quotes undone turns {turns}"
                for turns in (
                    quotes(text, chat.undone, chat.number)
                    for text in summaries_in(live)
                )
                if turns
            ]
            leaks += later_prompt_leaks(chat, prompts)
        if KEEPS_EACH_SUMMARY:
            assert written <= calls <= written + dropped, (
                f"{calls} summarizer calls for {written} summaries stored"
                f" and {dropped} dropped"
            )
    except Exception as error:
        raise AssertionError(f"{where}: {error!r}") from error
    assert not leaks, f"{where}: {leaks}"
