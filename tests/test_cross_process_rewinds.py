"""An undo in one process never loses to a summary stored by another (issue #24).

Two workers (``_mp_worker.py``) share one database: A computes the summary of
turns 1 - 2 (held in its summarizer), B rewinds turn 2 right after its final
reply, as a chat front end's "undo" sent to another process does. B's rewind
event is made (and stamped) first, then B's write is held inside upstream's
``append_event``; A's summary is released meanwhile. The rewind's write holds
the session's rewind fence across processes (``_rewind_fence``), so A's
summary waits for it, then sees the rewind and is dropped.

Where B is held: on SQLite right after upstream read the session's revision
(nothing is locked then): without the fence A stores its summary, B's write
still passes upstream's stale check and lands with its early stamp, before the
summary in storage order, so the summary of turn 2 keeps counting (what the
random schedules found, staged). On PostgreSQL that read locks the row, so B
is held before it: without the fence upstream finds B's write stale and the
package stamps the rewind after the summary, which it then removes.

With the cross-process part of the fence removed (``fenced`` without its
``session_lock``) it fails on SQLite, 1.39.1 and 2.13.0: the next prompt
shows turn 2 through the summary. Without the package (and ``BACKPORT_ONLY``
lifted) it fails on both: SQLite the same, PostgreSQL with B's rewind
rejected as stale. Not marked ``race``: a test of the package's two workers,
as the other multi-process tests.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any, List

import pytest
from google.adk.sessions import database_session_service as upstream_database

from _workers import Worker
from adk_compaction_backport._compaction_events import compaction_of
from adk_compaction_backport._rewinds import live_events, rewound_before
from adk_compaction_backport.verify.fake_model import APP_NAME
from adk_compaction_backport.verify.scenario import USER_ID
from harness import BACKPORT_ONLY, OTHER_FAMILY, engine_url, session_service
from test_multiprocess import started, summary_of_1_2_held_in, text  # noqa: F401

pytestmark = [
    pytest.mark.multiprocess,
    BACKPORT_ONLY,
    pytest.mark.skipif(
        not hasattr(upstream_database, "_select_required_state"),
        reason=OTHER_FAMILY + "releases whose append_event has the steps the "
        "test holds the write at (1.27.5, 1.28+)",
    ),
]


def summary_texts(events: List[Any]) -> List[str]:
    texts = []
    for event in events:
        compaction = compaction_of(event)
        content = getattr(compaction, "compacted_content", None)
        if content is not None and content.parts:
            texts.append(" ".join(part.text or "" for part in content.parts))
    return texts


@pytest.mark.asyncio(loop_scope="module")
async def test_an_undo_in_one_process_outlives_a_summary_from_the_other(
    started: List[Worker],  # noqa: F811
    database: Any,
) -> None:
    a, b = started
    for worker in started:
        await worker.call("open", url=engine_url(database), echo=True)
    service = session_service(database)
    session = "undo-across"
    await service.create_session(app_name=APP_NAME, user_id=USER_ID, session_id=session)

    ends = await summary_of_1_2_held_in(a, b, session)
    turn_two = a.last_invocation_id
    await a.call("watch_fence")
    where = "after_check_read" if database.kind == "sqlite" else "before_check"
    await b.call("hold_next_write", where=where)
    undo = b.send("rewind", session=session, invocation=turn_two)
    await b.call("write_held")  # the rewind is made and stamped, not written

    await a.call("release_summarizer")
    # The summary is stored (no fence), or finds the fence held by B's write.
    await a.call("summary_stored_or_fence_waited")
    await b.call("release_write")
    await b.result(undo)  # no error: the rewind is stored
    await asyncio.gather(*ends)
    for worker in started:
        await worker.call("drain")

    await a.call("turn", session=session, text=text(3))
    prompts = await a.call("prompts")
    shown = " ".join(prompts[-1])
    assert text(3) in shown
    assert text(2) not in shown, "the next prompt shows the undone turn"
    for worker in started:
        await worker.call("drain")
    stored = await service.get_session(
        app_name=APP_NAME, user_id=USER_ID, session_id=session
    )
    assert [e for e in stored.events if rewound_before(e)], "the rewind is lost"
    live = SimpleNamespace(events=live_events(stored.events))
    leaked = [t for t in summary_texts(live.events) if text(2) in t]
    assert not leaked, "a summary still counting quotes the undone turn"
