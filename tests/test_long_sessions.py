"""A long session's compaction reads what is new, never the whole history again.

The session is prefilled through the real service with ``PREFILLED`` events
(old turns and a summary after every two, as a session that compacted all along
looks), then turns run with compaction every two invocations. Every
``get_session`` the package makes (before the summarizer call, before the
summary's write, on a catch-up) is counted with the events it returned: each
must return only what is new since the turn's read, while the guarantees hold
as on a short session (every summary once, one summarizer call each, no failed
turn).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import pytest

from adk_compaction_backport._catch_up import caught_up_with_summaries
from adk_compaction_backport._compaction_events import compaction_of
from adk_compaction_backport._incremental_reads import read_session
from adk_compaction_backport.verify.scenario import USER_ID
from harness import BACKPORT_ONLY, CLAIMED_ONLY, Conversation, background_work_done

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the bench
from bench.long_sessions import (
    PREFILLED_SUMMARY,
    CountedReads,
    plain_event,
    prefill,
    summary_event,
)

pytestmark = [pytest.mark.asyncio, CLAIMED_ONLY]

# Long enough that a whole read (> PREFILLED events) stands far above FEW; the
# benchmark measures the lengths users run (python -m bench --long-sessions).
PREFILLED = 300
TURNS = 6
# The most events a read may return: the turns of this test and the summary
# of the prefill, far below the session's length.
FEW = 60


def new_summaries(session: Any) -> int:
    """Summaries stored by this test's turns (not the prefilled one)."""
    summaries = [e for e in session.events if compaction_of(e) is not None]
    return sum(e.invocation_id != PREFILLED_SUMMARY for e in summaries)


@BACKPORT_ONLY
async def test_compaction_of_a_long_session_reads_only_new_events(
    database: Any,
) -> None:
    chat = await Conversation(database).start()
    await prefill(chat.service, await chat.stored(), PREFILLED)
    reads = CountedReads(chat.service)
    for _ in range(TURNS):
        await chat.client_turn()
    await chat.finish()  # no turn failed
    await background_work_done()

    stored = await chat.stored()
    assert len(stored.events) > PREFILLED
    summaries = new_summaries(stored)
    assert summaries == TURNS // 2
    assert chat.control.calls == summaries  # one summarizer call per summary
    # before every summary's write at least (and before its summarizer call
    # on databases with a cross-process lock): a read of what is new, or one
    # row showing nothing is (``_revision_probe``)
    assert len(reads.package) + reads.probes.count(True) >= summaries
    assert reads.full_package_reads == 0
    assert max([events for events, _ in reads.package], default=0) <= FEW


@BACKPORT_ONLY
async def test_a_sequential_clients_compactions_read_one_row_where_it_can(
    database: Any,
) -> None:
    """Nothing is stored between a sequential client's turn and its summary's
    write: where the revision is exact (``SqliteSessionService``,
    ``DatabaseSessionService`` from 1.28) no event is read at all; elsewhere
    the probe says "moved" and the incremental read decides."""
    chat = await Conversation(database).start()
    await prefill(chat.service, await chat.stored(), PREFILLED)
    reads = CountedReads(chat.service)
    for _ in range(TURNS):
        await chat.turn()  # to the end of the stream
    await background_work_done()

    stored = await chat.stored()
    assert new_summaries(stored) == TURNS // 2 == chat.control.calls
    if type(chat.service).__name__ == "SqliteSessionService" or isinstance(
        getattr(stored, "_storage_update_marker", None), str
    ):
        assert reads.package == [], reads.package
        assert reads.probes.count(True) >= TURNS // 2, reads.probes
    else:
        assert True not in reads.probes
        assert len(reads.package) >= TURNS // 2


@BACKPORT_ONLY
async def test_a_turns_pass_over_its_events_reads_what_is_new_since_the_last(
    database: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A compaction cuts its window on the events its turn ended with; from
    the session's second turn in this process on, it reads of them only what
    is new since the last turn's pass (``_column_memory``), not the session
    again, and the summaries stay the same."""
    from adk_compaction_backport import _windows

    read = []
    original = _windows._ACTIONS

    def counted(event: Any) -> Any:
        read.append(1)
        return original(event)

    monkeypatch.setattr(_windows, "_ACTIONS", counted)
    chat = await Conversation(database).start()
    await prefill(chat.service, await chat.stored(), PREFILLED)
    per_turn = []
    for _ in range(TURNS):
        read.clear()
        await chat.turn()
        await background_work_done()
        per_turn.append(len(read))

    assert new_summaries(await chat.stored()) == TURNS // 2 == chat.control.calls
    assert per_turn[0] > PREFILLED  # the process's first pass over the session
    assert max(per_turn[1:]) <= FEW, per_turn


async def test_read_session_is_a_whole_read_where_storage_holds_the_turns_events(
    database: Any,
) -> None:
    chat = await Conversation(database).start()
    await prefill(chat.service, await chat.stored(), 200)
    turn = await chat.stored()
    await chat.turn()
    await chat.turn()
    whole = await chat.stored()
    reads = CountedReads(chat.service)

    read = await read_session(
        chat.service, chat.app.name, USER_ID, chat.session_id, turn.events
    )

    assert [e.id for e in read.events] == [e.id for e in whole.events]
    assert read.last_update_time == whole.last_update_time
    assert reads.package and reads.package[0][0] <= FEW


async def test_read_session_of_a_session_created_again_reads_it_whole(
    database: Any,
) -> None:
    chat = await Conversation(database).start()
    await chat.turn()
    turn = await chat.stored()
    await chat.service.delete_session(
        app_name=chat.app.name, user_id=USER_ID, session_id=chat.session_id
    )
    await chat.start()
    await chat.turn()
    reads = CountedReads(chat.service)

    read = await read_session(
        chat.service, chat.app.name, USER_ID, chat.session_id, turn.events
    )

    now = await chat.stored()
    assert [e.id for e in read.events] == [e.id for e in now.events]
    assert not {e.id for e in turn.events} & {e.id for e in read.events}
    assert len(reads.package) == 2  # the incremental read, then a whole one
    assert reads.full_package_reads == 1


async def test_catch_up_of_a_long_session_reads_only_the_new_summary(
    database: Any,
) -> None:
    chat = await Conversation(database).start()
    await prefill(chat.service, await chat.stored(), PREFILLED)
    turn = await chat.stored()  # a turn's Session, behind the summary below
    other = await chat.stored()
    covered = (other.events[0].timestamp, other.events[-2].timestamp)
    summary = summary_event(*covered, at=time.time(), invocation="late")
    await chat.service.append_event(other, summary)
    reads = CountedReads(chat.service)

    assert await caught_up_with_summaries(chat.service, turn)

    assert turn.events[-1].id == summary.id
    assert len(turn.events) == PREFILLED + 1  # the prefilled events, the late summary
    assert len(reads.package) == 1 and reads.full_package_reads == 0
    assert reads.package[0][0] <= FEW
    # its next write is level with storage
    await chat.service.append_event(turn, plain_event("next", "user", time.time()))


@BACKPORT_ONLY
async def test_a_turn_no_summary_can_be_due_on_leaves_upstream_compaction_alone(
    database: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Upstream's sliding-window compaction passes over the whole session to
    find it has nothing to do on every other turn (interval 2): the package
    calls it only when a summary may be due, and the summaries stay the same."""
    import adk_compaction_backport._coordinator as coordinator

    runs = []
    original = coordinator.run_compaction

    async def counted(*args: Any, **kwargs: Any) -> Any:
        runs.append(1)
        return await original(*args, **kwargs)

    monkeypatch.setattr(coordinator, "run_compaction", counted)
    chat = await Conversation(database).start()
    await prefill(chat.service, await chat.stored(), 40)
    for _ in range(TURNS):
        await chat.client_turn()
    await chat.finish()
    await background_work_done()

    assert new_summaries(await chat.stored()) == TURNS // 2
    assert chat.control.calls == TURNS // 2
    assert len(runs) == TURNS // 2
