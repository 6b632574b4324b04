"""Request-time compaction across processes: it builds on a summary in flight.

Worker A's sliding-window compaction of turns 1-2 is held in its summarizer
(it holds the session's cross-process lock) when turn 3 runs in worker B and
its request-time (token-threshold) compaction is about to summarize. Before,
B knew nothing of A's summary in flight and summarized the same events again:
two summarizer calls over one range. Now B takes the session's lock before it
summarizes, catches up with A's summary and decides again on top of it.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any, List, Tuple

import pytest
from packaging.version import Version

from _workers import Worker
from adk_compaction_backport._activation import installed_adk_version
from adk_compaction_backport.verify.analysis import inspect_session
from adk_compaction_backport.verify.fake_model import APP_NAME
from adk_compaction_backport.verify.scenario import USER_ID
from harness import BACKPORT_ONLY, engine_url, session_service
from test_multiprocess import started  # noqa: F401 (a fixture: two workers)

pytestmark = [
    pytest.mark.multiprocess,
    BACKPORT_ONLY,
    pytest.mark.skipif(
        Version(installed_adk_version() or "0") < Version("1.26"),
        reason="no request-time compaction before google-adk 1.26",
    ),
]

TOKEN_THRESHOLD = 3  # contents in the last prompt: turn 2 reports 3
RETENTION = 2
GATE = "request_time:session_lock"


async def stored_ranges(service: Any, session: str) -> Any:
    return inspect_session(
        await service.get_session(
            app_name=APP_NAME, user_id=USER_ID, session_id=session
        )
    )


async def new_session(service: Any) -> str:
    session = f"t-{uuid.uuid4().hex[:10]}"
    await service.create_session(app_name=APP_NAME, user_id=USER_ID, session_id=session)
    return session


async def what_one_process_stores(worker: Worker, service: Any) -> Tuple[Any, int]:
    """Turns 1-3 in one worker, each after the previous one's summary landed:
    the summary ranges and the summarizer calls."""
    session = await new_session(service)
    calls = await worker.call("calls")
    for turn in (1, 2, 3):
        await worker.call("turn", session=session, text=f"s0 turn {turn}")
        await worker.call("drain")
    ranges = (await stored_ranges(service, session)).summary_ranges
    return ranges, await worker.call("calls") - calls


@pytest.mark.asyncio(loop_scope="module")
async def test_a_request_time_summary_builds_on_another_processes_summary_in_flight(
    started: List[Worker],  # noqa: F811
    database: Any,
) -> None:
    """A: turns 1-2, turn 2's compaction held in its summarizer; B: turn 3,
    whose request-time compaction is due. B takes the session's lock, waits
    for A's summary, and builds on it: what one process stores, one
    summarizer call per summary, no failed turn."""
    if database.kind not in ("sqlite", "postgresql"):
        pytest.skip("SQLite and PostgreSQL")
    a, b = started[:2]
    for worker in (a, b):
        await worker.call(
            "open",
            url=engine_url(database),
            token_threshold=TOKEN_THRESHOLD,
            event_retention_size=RETENTION,
        )
    service = session_service(database)
    expected, expected_calls = await what_one_process_stores(a, service)
    assert expected_calls == len(expected) > 0, expected
    session = await new_session(service)
    calls_before = (await a.call("calls"), await b.call("calls"))

    await a.call("turn", session=session, text="s0 turn 1")
    await a.call("drain")
    await a.call("hold_summarizer")
    ends = [await a.eager_turn(session, "s0 turn 2")]
    await a.call("summarizer_entered", calls=calls_before[0] + 1)  # turn 2's
    await b.call("gate", step=GATE)
    third = asyncio.ensure_future(b.call("turn", session=session, text="s0 turn 3"))
    about_to_summarize = asyncio.ensure_future(b.call("reached", step=GATE))
    await asyncio.wait([third, about_to_summarize], return_when=asyncio.FIRST_COMPLETED)
    await b.call("open_gate", step=GATE)  # B waits for A's lock
    await a.call("release_summarizer")
    ends.append(third)
    await asyncio.gather(*ends)  # no turn failed
    about_to_summarize.cancel()
    await asyncio.gather(*(w.call("drain") for w in (a, b)))

    stored = await stored_ranges(service, session)
    calls = await a.call("calls") + await b.call("calls") - sum(calls_before)
    where = f"ranges {stored.summary_ranges} in {calls} calls; one process: {expected}"
    assert stored.user_messages == [f"s0 turn {t}" for t in (1, 2, 3)], where
    assert stored.summary_ranges == expected, where
    assert calls == len(expected), where
    assert await a.call("warnings") == await b.call("warnings") == [], where
