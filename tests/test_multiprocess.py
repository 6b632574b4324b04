"""Two worker processes serve the same sessions from one PostgreSQL database.

Each worker (``_mp_worker.py``) is a separate interpreter with the package
active through its start-up hook. An eager client alternates turns between
them; the fake summarizer and the agent's model are held on events inside the
workers, so every collision below is staged, not hoped for.

On 1.16-1.19.0 a turn's reply writes session state (``output_key``), which
moves ``sessions.update_time``; a summary carries no state delta and moves
nothing. So the summary write is what goes stale when the other process ran a
turn, and a summary can never make the other process's turn stale.

From 1.20 every append moves the session's revision (``update_time``, from
1.28 a revision marker), a summary's too: a turn that loaded the session
before the other process's summary landed is stale when it writes, and the
package brings it up to date (only summaries are newer) and retries the write.
From 1.19 a turn's stream ends only after its compaction: the client reads
turns eagerly (up to the final reply) and never waits for the end of a stream
whose summary is held.

A compaction takes the session's cross-process lock (a PostgreSQL advisory
lock) and reads storage first, so a compaction in one worker waits for the
other worker's and builds on its summary; the tests that stage what happens
without it turn the lock off in the workers.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from pathlib import Path
from typing import Any, List, Optional

import pytest
import pytest_asyncio
from google.adk.sessions.database_session_service import DatabaseSessionService
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from _postgres import Database
from _workers import Worker
from adk_compaction_backport._activation import installed_adk_version
from adk_compaction_backport.verify.analysis import inspect_session
from adk_compaction_backport.verify.fake_model import APP_NAME
from adk_compaction_backport.verify.scenario import USER_ID
from harness import BACKPORT_ONLY, engine_url

HERE = Path(__file__).parent
# The words of upstream's stale-session ValueError: 1.x before 1.28, then 1.28+
# (from 2.7 as ``StaleSessionError``).
STALE = "stale session|modified in storage"
ADK = Version(installed_adk_version() or "0")
# From 1.20 every append moves the session's revision: a summary's, and a
# user message's (which carries no state).
EVERY_APPEND_MOVES_THE_REVISION = ADK in SpecifierSet(">=1.20")

pytestmark = [pytest.mark.multiprocess, BACKPORT_ONLY]
upstream_detects_conflicts = pytest.mark.skipif(
    ADK in SpecifierSet(">=1.24,<1.28"),
    reason="1.24-1.27 reload a stale session and write anyway: upstream merges "
    "conflicting turns instead of raising",
)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def started(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Two worker processes (A and B), started once: each import takes seconds."""
    logs = tmp_path_factory.mktemp("workers")
    pair = await asyncio.gather(
        Worker.start(logs / "a.err"), Worker.start(logs / "b.err")
    )
    try:
        yield pair
    finally:
        await asyncio.gather(*(w.stop() for w in pair))


@pytest_asyncio.fixture(loop_scope="module")
async def workers(started: List[Worker], postgres_db_url: str) -> List[Worker]:
    """Both workers, opened on this test's database with the package active."""
    url = engine_url(Database("postgresql", postgres_db_url))
    for worker in started:
        status = await worker.call("open", url=url)
        assert status["applied"], status
    return started


@pytest_asyncio.fixture(loop_scope="module")
async def storage(postgres_db_url: str) -> Any:
    """The client's own view of the shared database, and a fresh session id."""
    service = DatabaseSessionService(
        db_url=engine_url(Database("postgresql", postgres_db_url))
    )
    session_id = f"shared-{uuid.uuid4().hex[:8]}"
    await service.create_session(
        app_name=APP_NAME, user_id=USER_ID, session_id=session_id
    )
    return service, session_id


async def stored(storage: Any) -> Any:
    service, session_id = storage
    session = await service.get_session(
        app_name=APP_NAME, user_id=USER_ID, session_id=session_id
    )
    return inspect_session(session)


def text(turn: int) -> str:
    return f"s0 turn {turn}"


async def summary_of_1_2_held_in(
    summarizing: Worker, other: Worker, session: str
) -> List[asyncio.Future]:
    """Turn 1 in ``other``, turn 2 in ``summarizing``, whose summary then waits.

    Returns the ends of both turns' streams (the client did not wait for them;
    from 1.19 turn 2's ends only after its summary).
    """
    await summarizing.call("hold_summarizer")
    ends = [await other.eager_turn(session, text(1))]
    ends.append(await summarizing.eager_turn(session, text(2)))
    await summarizing.call("summarizer_entered", calls=1)
    return ends


@pytest.mark.asyncio(loop_scope="module")
async def test_a_compaction_waits_for_the_other_processs_and_builds_on_it(
    workers: List[Worker], storage: Any
) -> None:
    a, b = workers
    _, session = storage
    ends = await summary_of_1_2_held_in(b, a, session)
    # A's turn 3 ends while B summarizes 1-2: A's compaction waits for B's
    # lock, then finds 1-2 in storage and has nothing left to summarize.
    ends.append(await a.eager_turn(session, text(3)))
    await b.call("release_summarizer")
    await b.call("drain")
    await a.call("drain")
    await asyncio.gather(*ends)  # no turn failed
    findings = await stored(storage)
    assert findings.summary_ranges == [(1, 2)]
    assert findings.user_messages == [text(n) for n in (1, 2, 3)]
    assert await a.call("calls") == 0
    assert await a.call("warnings") == [] and await b.call("warnings") == []


@pytest.mark.asyncio(loop_scope="module")
async def test_no_turn_fails_because_of_a_summary_from_the_other_process(
    workers: List[Worker], storage: Any
) -> None:
    a, b = workers
    _, session = storage
    ends = await summary_of_1_2_held_in(a, b, session)
    await b.call("hold_model")
    turn_3 = b.send("turn", session=session, text=text(3))
    await b.call("model_entered")  # turn 3 has loaded the session
    await a.call("release_summarizer")
    await a.call("drain")  # the summary landed under turn 3's feet
    await b.call("release_model")
    await b.result(turn_3)  # turn 3 stores its reply and state
    await b.call("drain")
    await asyncio.gather(*ends)

    # From 1.20 A's summary made turn 3's reply write stale: turn 3 took the
    # summary and wrote again. Before, turn 3 never learnt of it, but B's
    # compaction reads storage first. Either way B knows 1-2 are summarized
    # (the next compaction is due at turn 4).
    findings = await stored(storage)
    assert findings.summary_ranges == [(1, 2)]
    assert await b.call("calls") == 0
    assert findings.user_messages == [text(n) for n in (1, 2, 3)]
    assert len(findings.replies) == 3
    assert await a.call("warnings") == [] and await b.call("warnings") == []


@pytest.mark.asyncio(loop_scope="module")
async def test_a_summary_the_other_process_already_covered_is_dropped(
    workers: List[Worker], storage: Any
) -> None:
    a, b = workers
    _, session = storage
    # Without the lock (another version of the package, or turned off) only
    # the check before the write keeps a range from being stored twice.
    await asyncio.gather(*(w.call("cross_process", on=False) for w in workers))
    ends = await summary_of_1_2_held_in(b, a, session)
    await (await a.eager_turn(session, text(3)))  # A, unaware, summarizes 1-3
    await a.call("drain")
    await b.call("release_summarizer")
    await b.call("drain")
    await asyncio.gather(*ends)

    findings = await stored(storage)
    assert findings.summary_ranges == [(1, 3)]
    assert any(
        "already stores a summary reaching as far" in w
        for w in await b.call("warnings")
    )
    assert await a.call("warnings") == []


async def outcome(worker: Worker, turn: int) -> Optional[str]:
    """None if the turn went through, else the worker's error."""
    try:
        await worker.result(turn)
    except RuntimeError as error:
        return str(error)
    return None


@upstream_detects_conflicts
@pytest.mark.asyncio(loop_scope="module")
async def test_conflicting_turns_in_two_processes_still_raise_upstreams_error(
    workers: List[Worker], storage: Any
) -> None:
    a, b = workers
    _, session = storage
    await asyncio.gather(a.call("hold_model"), b.call("hold_model"))
    in_a = a.send("turn", session=session, text=text(1))
    await a.call("model_entered")  # A loaded the session, stored its message
    in_b = b.send("turn", session=session, text=text(2))
    await b.call("model_entered")  # B loaded it after that, stored its message
    await a.call("release_model")
    outcomes = [await outcome(a, in_a)]
    await b.call("release_model")
    outcomes.append(await outcome(b, in_b))

    # Not merged, not hidden. Until 1.20 a user message moves no revision, so
    # A's reply goes through and B's, written on a session A's reply changed,
    # fails; from 1.20 B's message already made A's session stale.
    if EVERY_APPEND_MOVES_THE_REVISION:
        assert outcomes[1] is None and re.search(STALE, outcomes[0] or "")
    else:
        assert outcomes[0] is None and re.search(STALE, outcomes[1] or "")
    findings = await stored(storage)
    assert sorted(findings.user_messages) == [text(1), text(2)]
    assert len(findings.replies) == 1
