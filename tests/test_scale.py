"""Many sessions at once on PostgreSQL: nothing lost, nothing kept, no global lock.

200 sessions x 10 turns, compaction every 2 invocations, one runner. Marked
``scale``: it takes about a minute, so the tox envs decide where it runs.
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
from harness import BACKPORT_ONLY, ONLY_1_16, background_work_done, engine_url

SESSIONS = 200
TURNS = 10
INTERVAL = 2

pytestmark = [pytest.mark.scale, ONLY_1_16, BACKPORT_ONLY]


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


async def _turns(runner: Runner, number: int, turns: range) -> None:
    for turn in turns:
        async for _ in runner.run_async(
            user_id=USER_ID, session_id=f"s{number}", new_message=message(number, turn)
        ):
            pass


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
    await asyncio.gather(*(_turns(runner, n, range(1, 3)) for n in range(SESSIONS)))
    await asyncio.wait_for(control.wait_for_calls(SESSIONS), timeout=120)
    # ... and the next turns do not wait for any of them.
    await asyncio.gather(*(_turns(runner, n, range(3, 4)) for n in range(SESSIONS)))
    control.gate = None
    gate.set()
    await asyncio.gather(
        *(_turns(runner, n, range(4, TURNS + 1)) for n in range(SESSIONS))
    )
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
