"""Many sessions at once on PostgreSQL: nothing lost, nothing kept, no global lock.

200 sessions x 10 turns, compaction every 2 invocations, one runner. Marked
``scale``: it takes about a minute, so the tox envs decide where it runs.

From 1.19 a turn's stream ends only after its compaction, so the client is
eager there: each session sends its next message at the final reply, and a
task reads the rest of the stream. Every summary then competes with its
session's next turns for the pool that 200 sessions share, and must still be
stored once, without a retry running out.
"""

from __future__ import annotations

import asyncio
import gc
import weakref
from typing import Any, List

import pytest
from google.adk.runners import Runner
from google.adk.sessions.database_session_service import DatabaseSessionService

from _postgres import Database
from adk_compaction_backport._coordinator import COORDINATOR
from adk_compaction_backport.verify.analysis import (
    check_summaries,
    expected_ranges,
    inspect_session,
)
from adk_compaction_backport.verify.fake_model import SummarizerControl, make_app
from adk_compaction_backport.verify.scenario import USER_ID, message
from harness import (
    BACKPORT_ONLY,
    COMPACTION_ENDS_THE_STREAM,
    background_work_done,
    engine_url,
)

SESSIONS = 200
TURNS = 10
INTERVAL = 2

pytestmark = [pytest.mark.scale, BACKPORT_ONLY]


class Sessions:
    """The session service, remembering (weakly) every ``Session`` it handed out."""

    def __init__(self, service: DatabaseSessionService) -> None:
        self.loaded: List[weakref.ref] = []
        self._get = service.get_session
        service.get_session = self.get_session

    async def get_session(self, **kwargs: Any) -> Any:
        session = await self._get(**kwargs)
        if session is not None:
            self.loaded.append(weakref.ref(session))
        return session


async def _turns(
    runner: Runner, number: int, turns: range, eager: bool
) -> List[asyncio.Future]:
    """Run one session's ``turns``; return the ends of their streams."""
    tails = []
    for turn in turns:
        stream = runner.run_async(
            user_id=USER_ID, session_id=f"s{number}", new_message=message(number, turn)
        )
        async for event in stream:
            if eager and _is_final_reply(event):
                break  # the next message goes now; a task reads the rest
        tails.append(asyncio.ensure_future(_read_to_the_end(stream)))
    return tails


def _is_final_reply(event: Any) -> bool:
    return event.author != "user" and event.is_final_response()


async def _read_to_the_end(stream: Any) -> None:
    async for _ in stream:
        pass


async def _all_turns(
    runner: Runner, turns: range, eager: bool = False
) -> List[asyncio.Future]:
    """Every session's ``turns`` at once; the ends of all their streams."""
    per_session = await asyncio.gather(
        *(_turns(runner, n, turns, eager) for n in range(SESSIONS))
    )
    return [tail for tails in per_session for tail in tails]


@pytest.mark.asyncio
async def test_many_sessions_keep_everything_and_never_wait_on_each_other(
    postgres_db_url: str,
) -> None:
    control = SummarizerControl()
    app = make_app(control, interval=INTERVAL)
    service = DatabaseSessionService(
        db_url=engine_url(Database("postgresql", postgres_db_url))
    )
    sessions = Sessions(service)
    runner = Runner(app=app, session_service=service)
    for number in range(SESSIONS):
        await service.create_session(
            app_name=app.name, user_id=USER_ID, session_id=f"s{number}"
        )
    tracked_at_start = COORDINATOR.tracked_sessions()

    # Every session's first summary waits in the summarizer at the same time:
    # with a lock shared between sessions, they could not all get there.
    gate = control.hold()
    eager = COMPACTION_ENDS_THE_STREAM  # else turn 2 would wait for its summary
    tails = await _all_turns(runner, range(1, 3), eager)
    await asyncio.wait_for(control.wait_for_calls(SESSIONS), timeout=120)
    # ... and the next turns do not wait for any of them.
    tails += await _all_turns(runner, range(3, 4), eager)
    control.gate = None
    gate.set()
    tails += await _all_turns(runner, range(4, TURNS + 1), eager)
    await asyncio.wait_for(asyncio.gather(*tails), timeout=120)  # none failed
    del tails
    await background_work_done(timeout=120)

    expected = expected_ranges(TURNS, INTERVAL, overlap=1)
    stored: List[Any] = []
    for number in range(SESSIONS):
        findings = inspect_session(
            await service.get_session(
                app_name=app.name, user_id=USER_ID, session_id=f"s{number}"
            )
        )
        wanted = [f"s{number} turn {t}" for t in range(1, TURNS + 1)]
        assert findings.user_messages == wanted
        assert len(findings.replies) == TURNS
        check = check_summaries(findings.summary_ranges, expected)
        stored.append((check.stored, check.duplicated, check.unexpected))
    assert stored == [(len(expected), 0, 0)] * SESSIONS
    assert control.calls == SESSIONS * len(expected)

    # Idle sessions leave no bookkeeping behind, and nothing keeps a Session.
    assert COORDINATOR.pending() == 0
    assert COORDINATOR.tracked_sessions() == tracked_at_start
    del findings
    gc.collect()
    assert sessions.loaded
    assert [r for r in sessions.loaded if r() is not None] == []
