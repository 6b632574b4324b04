"""Faults around a compaction, on real databases: none may lose a user event.

``test_race_v1_16.py`` already covers a failing summarizer, a hung one under
sync ``Runner.run``, a loop that closes with a compaction pending, and a
stream closed right after the final reply. This file adds what those leave
open: a hung summarizer and ``drain()``, the time limit's variable, the
database refusing (or losing the answer to) the summary write, and a client
that disconnects while the turn is still running.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from packaging.specifiers import SpecifierSet
from packaging.version import Version
from sqlalchemy.exc import OperationalError

import adk_compaction_backport as acb
from adk_compaction_backport._activation import installed_adk_version
from adk_compaction_backport._compaction_run import (
    DEFAULT_TIME_LIMIT,
    TIME_LIMIT_VARIABLE,
)
from adk_compaction_backport._coordinator import COORDINATOR, Coordinator
from adk_compaction_backport.verify.analysis import inspect_session
from harness import (
    BACKPORT_ONLY,
    Conversation,
    GatedEchoModel,
    background_work_done,
)

pytestmark = [BACKPORT_ONLY]

# 2.2-2.6 run the end-of-invocation compaction in a ``finally`` that a
# cancelled stream reaches too (CancelledError is no Exception; seen on 2.6.3).
CANCELLED_TURNS_COMPACT = Version(installed_adk_version() or "0") in SpecifierSet(
    ">=2.2,<2.7"
)


def assert_idle() -> None:
    assert COORDINATOR.pending() == 0
    assert COORDINATOR.tracked_sessions() == 0


def warnings_about(caplog: pytest.LogCaptureFixture, session_id: str) -> list:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.WARNING and session_id in r.getMessage()
    ]


class SummaryWriteFaults:
    """The database refuses the first ``failures`` summary writes of a service.

    ``after_commit``: the row is committed, then the connection drops before
    the answer arrives (the caller cannot tell whether it was stored).
    User turns' writes always go through.
    """

    def __init__(self, service: Any, failures: int, after_commit: bool = False):
        self.attempts = 0
        self._failures = failures
        self._after_commit = after_commit
        self._original = service.append_event
        service.append_event = self.append_event

    async def append_event(self, session: Any, event: Any) -> Any:
        if getattr(event.actions, "compaction", None) is None:
            return await self._original(session=session, event=event)
        self.attempts += 1
        if self.attempts > self._failures:
            return await self._original(session=session, event=event)
        if self._after_commit:
            await self._original(session=session, event=event)
        raise OperationalError(
            "INSERT INTO events ...",
            {},
            Exception("server closed the connection unexpectedly"),
        )


def test_the_time_limit_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv(TIME_LIMIT_VARIABLE, "2.5")
    assert Coordinator().time_limit == 2.5
    monkeypatch.setenv(TIME_LIMIT_VARIABLE, "not a number")
    assert Coordinator().time_limit == DEFAULT_TIME_LIMIT


@pytest.mark.asyncio
async def test_the_next_compaction_covers_what_a_failed_summarizer_left(database):
    chat = await Conversation(database).start()
    chat.control.fail = True
    await chat.turn()
    await chat.turn()
    await background_work_done()
    chat.control.fail = False
    await chat.turn()
    await background_work_done()

    assert await chat.summary_ranges() == [(1, 3)]
    assert_idle()


@pytest.mark.asyncio
async def test_drain_returns_once_a_hung_summarizer_is_abandoned(
    database, caplog, monkeypatch
):
    monkeypatch.setattr(COORDINATOR, "time_limit", 0.5)
    caplog.set_level(logging.WARNING)
    chat = await Conversation(database).start()
    await chat.turns_with_summarizer_held(2)  # never released: a hung summarizer

    # The bound, not the summarizer, ends the wait (60 s: a generous backstop).
    assert await asyncio.wait_for(acb.drain(), timeout=60) == 1
    await chat.finish()  # from 1.19 turn 2's stream ends once it is abandoned
    assert any("was abandoned" in m for m in warnings_about(caplog, chat.session_id))
    assert await chat.summary_ranges() == []
    assert len((await chat.stored()).events) == 4  # both turns stored
    assert_idle()


@pytest.mark.asyncio
async def test_a_summary_write_the_database_refuses_once_is_retried(database):
    chat = await Conversation(database).start()
    faults = SummaryWriteFaults(chat.service, failures=1)
    await chat.turn()
    await chat.turn()
    await background_work_done()

    assert faults.attempts == 2
    assert await chat.summary_ranges() == [(1, 2)]
    assert_idle()


@pytest.mark.asyncio
async def test_a_summary_write_the_database_keeps_refusing_is_tried_twice(
    database, caplog
):
    chat = await Conversation(database).start()
    faults = SummaryWriteFaults(chat.service, failures=2)
    caplog.set_level(logging.WARNING)
    await chat.turn()
    await chat.turn()
    await background_work_done()

    assert faults.attempts == 2
    assert any("dropped" in m for m in warnings_about(caplog, chat.session_id))


@pytest.mark.asyncio
async def test_a_refused_summary_write_never_costs_a_user_event(database, caplog):
    chat = await Conversation(database).start()
    faults = SummaryWriteFaults(chat.service, failures=10**6)
    caplog.set_level(logging.WARNING)
    for _ in range(4):
        await chat.turn()  # no turn fails
    await background_work_done()

    findings = inspect_session(await chat.stored())
    assert findings.user_messages == [f"s0 turn {n}" for n in range(1, 5)]
    assert len(findings.replies) == 4
    assert findings.summary_ranges == []
    # at most one retry per summary (each dropped one leaves the next
    # compaction due a turn earlier)
    assert 1 <= faults.attempts <= 2 * chat.control.calls
    assert warnings_about(caplog, chat.session_id)
    assert "Task exception was never retrieved" not in caplog.text
    assert_idle()


@pytest.mark.asyncio
async def test_a_summary_whose_commit_answer_was_lost_is_stored_once(database):
    chat = await Conversation(database).start()
    SummaryWriteFaults(chat.service, failures=1, after_commit=True)
    for _ in range(4):
        await chat.turn()
        await background_work_done()

    # A retry must see the committed summary and not store it again.
    ranges = await chat.summary_ranges()
    assert ranges[0] == (1, 2) and len(ranges) == len(set(ranges))
    assert_idle()


@pytest.mark.asyncio
async def test_a_client_that_disconnects_mid_turn_keeps_what_was_stored(
    database, caplog
):
    chat = await Conversation(database).start()
    await chat.turn()
    model = chat.app.root_agent.model
    gated = GatedEchoModel(entered=asyncio.Event(), release=asyncio.Event())
    chat.app.root_agent.model = gated
    turn = asyncio.ensure_future(chat.turn())
    await gated.entered.wait()  # the user message is stored, the reply is not
    turn.cancel()  # what a web server does when the client goes away
    with pytest.raises(asyncio.CancelledError):
        await turn
    chat.app.root_agent.model = model
    caplog.set_level(logging.WARNING)
    for _ in range(3):
        await chat.turn()
    await background_work_done()

    findings = inspect_session(await chat.stored())
    assert findings.user_messages == [f"s0 turn {n}" for n in range(1, 6)]
    assert len(findings.replies) == 4  # every turn but the disconnected one
    # The disconnected invocation is summarized with its neighbours, once:
    # with the next ones, or where the cancelled turn compacts, with turn 1.
    if CANCELLED_TURNS_COMPACT:
        assert findings.summary_ranges == [(1, 2), (2, 4)]
    else:
        assert findings.summary_ranges == [(1, 3), (3, 5)]
    assert chat.control.calls == 2
    assert not warnings_about(caplog, chat.session_id)
    assert_idle()
