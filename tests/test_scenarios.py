"""End-to-end workloads: several sessions and turns, every client style.

Whatever the client's timing, storage must end up as a patient client's would:
every user message and reply once, exactly the expected summaries, each once,
one summarizer call per summary, no failed turn and no error logged.
"""

from __future__ import annotations

import pytest

from adk_compaction_backport.verify.scenario import Workload, run_workload
from adk_compaction_backport.verify.urls import uses_async_engine
from harness import (
    KEEPING_SUMMARIES_ONLY,
    engine_url,
    fix_under_test,
    session_service,
)

pytestmark = [
    pytest.mark.scenario,
    pytest.mark.skipif(fix_under_test() is None, reason="no fix is under test here"),
]


@pytest.mark.parametrize(
    ("client", "api"),
    [
        ("sequential", "async"),
        # An eager client overtakes summaries: only kept if each is kept.
        pytest.param("eager", "async", marks=KEEPING_SUMMARIES_ONLY),
        ("sequential", "sync"),
        ("eager", "sync"),
    ],
)
@pytest.mark.asyncio
async def test_storage_matches_a_patient_client(database, client, api):
    if api == "sync" and uses_async_engine():
        pytest.skip("sync Runner.run with an async engine: an upstream limitation")
    workload = Workload(
        sessions=3,
        turns=6,
        summarizer_delay=0.3,
        reply_delay=0.05,
        client=client,
        api=api,
    )
    report = await run_workload(
        engine_url(database), workload, session_service=session_service(database)
    )

    assert report.errors == []
    assert report.turns_failed == 0
    assert report.user_messages_lost == 0
    assert report.replies_stored == 18
    assert report.summaries_expected == 9
    assert report.summaries_stored == 9
    assert report.summaries_duplicated == 0
    assert report.summaries_unexpected == 0
    assert report.summarizer_calls == 9
    assert report.ok
