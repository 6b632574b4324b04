"""Several worker processes, one PostgreSQL database: every summary once.

Each worker (``_mp_worker.py``) is an interpreter with the package active
through its start-up hook, a ``Runner`` and a ``DatabaseSessionService`` of
its own, as ``uvicorn --workers N`` or a load balancer without session
affinity gives. The client sends the turns of each session to the workers in
turn (turn 1 to the first, turn 2 to the next, ...), so every compaction runs
in another process than the turn before it. The summarizer takes
``SUMMARIZER_DELAY`` seconds, so with the eager client (the next message at
the final reply) a summary is still being computed in one worker when the
next turn's compaction starts in another.

What one process would store is the yardstick: the same summaries over the
same invocation ranges, one summarizer call per summary, every user message,
no failed turn. Whoever takes the lock first: a later turn's compaction that
gets there before an earlier one's (a busy machine) waits for the earlier one,
which its process claims while pending
(``test_a_later_turns_compaction_that_gets_the_lock_first_waits_for_the_earlier``
stages it). ``test_without_the_lock_ranges_are_summarized_twice`` shows the
same workload with the lock turned off (the behaviour before it).
The kill and restart tests stage their faults with a held summarizer.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, List, Tuple

import pytest
import pytest_asyncio
from google.adk.sessions.database_session_service import DatabaseSessionService

from _postgres import Database, PostgresUnavailable, ThrowawayCluster
from _workers import Worker
from adk_compaction_backport._process_locks import _digest
from adk_compaction_backport.verify.analysis import (
    check_summaries,
    expected_ranges,
    inspect_session,
)
from adk_compaction_backport.verify.fake_model import APP_NAME
from adk_compaction_backport.verify.scenario import USER_ID
from devtools.databases import create_database, drop_database
from harness import BACKPORT_ONLY, engine_url

pytestmark = [pytest.mark.multiprocess, BACKPORT_ONLY]

SESSIONS, TURNS, INTERVAL, OVERLAP = 4, 8, 2, 1
SUMMARIZER_DELAY = 0.2


def chained(ranges: List[Tuple[int, int]]) -> bool:
    """Each invocation summarized as new once: every summary starts where the
    window would (``OVERLAP`` invocations before its first new one), ends
    further than the one before, and at most ``INTERVAL - 1`` invocations are
    left unsummarized at the end."""
    end = 0
    for start, stop in ranges:
        if start != max(1, end - OVERLAP + 1) or stop <= end:
            return False
        end = stop
    return end > TURNS - INTERVAL


@dataclass
class Outcome:
    turns_failed: int = 0
    failures: List[str] = field(default_factory=list)  # what the failed turns raised
    messages_lost: int = 0
    expected: int = 0
    stored: int = 0
    duplicated: int = 0
    unexpected: int = 0
    broken_chains: int = 0
    calls: int = 0
    errors: List[str] = field(default_factory=list)

    @property
    def every_summary_once(self) -> bool:
        """What one process stores: every summary once, over the same ranges,
        one summarizer call each, every message, no failed turn."""
        return (
            self.turns_failed == 0
            and self.messages_lost == 0
            and self.duplicated == 0
            and self.unexpected == 0
            and self.broken_chains == 0
            and self.stored == self.expected
            and self.calls == self.stored
        )


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def started(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Four worker processes, started once: each import takes seconds."""
    logs = tmp_path_factory.mktemp("workers")
    four = await asyncio.gather(*(Worker.start(logs / f"{n}.err") for n in range(4)))
    try:
        yield four
    finally:
        await asyncio.gather(*(w.stop() for w in four))


async def open_on(workers: List[Worker], url: str, **options: Any) -> None:
    for worker in workers:
        status = await worker.call("open", url=url, **options)
        assert status["applied"], status


def service_on(url: str) -> Any:
    return DatabaseSessionService(db_url=url)


async def new_session(service: Any) -> str:
    session_id = f"x-{uuid.uuid4().hex[:10]}"
    await service.create_session(
        app_name=APP_NAME, user_id=USER_ID, session_id=session_id
    )
    return session_id


async def drive(
    workers: List[Worker], session_id: str, number: int, client: str, turns: int
) -> List[str]:
    """Turns of one session, round-robin over ``workers``; what failed turns
    raised."""
    ends = []
    for turn in range(1, turns + 1):
        worker = workers[(turn - 1 + number) % len(workers)]
        text = f"s{number} turn {turn}"
        if client == "eager":
            ends.append(await worker.eager_turn(session_id, text))
        else:
            ends.append(
                asyncio.ensure_future(
                    worker.call("turn", session=session_id, text=text)
                )
            )
            await asyncio.wait([ends[-1]])
    done = await asyncio.gather(*ends, return_exceptions=True)
    return [str(result) for result in done if isinstance(result, BaseException)]


async def run_workload(workers: List[Worker], url: str, client: str) -> Outcome:
    service = service_on(url)
    ids = [await new_session(service) for _ in range(SESSIONS)]
    calls_before = sum([await w.call("calls") for w in workers])
    failed = await asyncio.gather(
        *(drive(workers, sid, n, client, TURNS) for n, sid in enumerate(ids))
    )
    await asyncio.gather(*(w.call("drain") for w in workers))
    failures = [failure for session in failed for failure in session]
    outcome = Outcome(turns_failed=len(failures), failures=failures)
    expected = expected_ranges(TURNS, INTERVAL, OVERLAP)
    for n, sid in enumerate(ids):
        session = await service.get_session(
            app_name=APP_NAME, user_id=USER_ID, session_id=sid
        )
        findings = inspect_session(session)
        wanted = [f"s{n} turn {t}" for t in range(1, TURNS + 1)]
        outcome.messages_lost += sum(t not in findings.user_messages for t in wanted)
        check = check_summaries(findings.summary_ranges, expected)
        outcome.expected += check.expected
        outcome.stored += check.stored
        outcome.duplicated += check.duplicated
        outcome.unexpected += check.unexpected
        outcome.broken_chains += not chained(findings.summary_ranges)
    outcome.calls = sum([await w.call("calls") for w in workers]) - calls_before
    for worker in workers:
        outcome.errors += await worker.call("warnings")
    return outcome


@pytest.fixture
def url(postgres_db_url: str) -> str:
    return engine_url(Database("postgresql", postgres_db_url))


@pytest.mark.parametrize("count", [2, 4])
@pytest.mark.parametrize("client", ["sequential", "eager"])
@pytest.mark.asyncio(loop_scope="module")
async def test_workers_store_what_one_process_would(
    started: List[Worker], url: str, count: int, client: str
) -> None:
    workers = started[:count]
    await open_on(workers, url, summarizer_delay=SUMMARIZER_DELAY)
    outcome = await run_workload(workers, url, client)
    assert outcome.every_summary_once, outcome
    assert outcome.errors == [], outcome.errors


@pytest.mark.asyncio(loop_scope="module")
async def test_without_the_lock_ranges_are_summarized_twice(
    started: List[Worker], url: str
) -> None:
    """The same workload with the lock off: what the lock is for."""
    workers = started[:2]
    await open_on(workers, url, summarizer_delay=SUMMARIZER_DELAY, cross_process=False)
    outcome = await run_workload(workers, url, "eager")
    print(f"2 workers, eager, lock off: {outcome}")
    assert outcome.turns_failed == 0 and outcome.messages_lost == 0, outcome
    assert outcome.calls > outcome.stored or outcome.broken_chains, outcome
    assert not outcome.every_summary_once, outcome


@pytest.mark.asyncio(loop_scope="module")
async def test_a_later_turns_compaction_that_gets_the_lock_first_waits_for_the_earlier(
    started: List[Worker], url: str
) -> None:
    """The windows are cut where one process cuts them, whoever takes the lock
    first: turn 3's compaction (worker B) finds turn 2's due and claimed by
    worker A, lets go of the lock and waits for it, then has nothing due."""
    a, b = started[:2]
    await open_on([a, b], url)
    service = service_on(url)
    session = await new_session(service)
    await a.call("gate", step="session_lock")
    await a.call("turn", session=session, text="s0 turn 1")  # nothing due
    ends = [await a.eager_turn(session, "s0 turn 2")]
    await a.call("reached", step="session_lock")  # turn 2: claimed, no lock
    await b.call("gate", step="session_lock")
    ends.append(await b.eager_turn(session, "s0 turn 3"))
    await b.call("reached", step="session_lock")
    await b.call("open_gate", step="session_lock")
    await b.call("left", step="session_lock")  # B took the lock first, let go
    await a.call("open_gate", step="session_lock")
    await assert_only_1_2_summarized(a, b, service, session, ends)


@pytest.mark.asyncio(loop_scope="module")
async def test_a_later_turns_compaction_waits_for_an_earlier_claim_about_to_come(
    started: List[Worker], url: str
) -> None:
    """Turn 2's compaction (worker A) has not claimed its turn yet (a first
    lock connection still opening) when turn 3's (worker B) gets the lock: B
    waits for the claim to come (``CLAIM_GRACE`` after turn 2 ended, long here
    so that a slow machine cannot pass it), then for it to go."""
    a, b = started[:2]
    await open_on([a, b], url, claim_grace=60.0)
    service = service_on(url)
    session = await new_session(service)
    await a.call("gate", step="turn_claim")
    await a.call("turn", session=session, text="s0 turn 1")  # nothing due
    ends = [await a.eager_turn(session, "s0 turn 2")]
    await a.call("reached", step="turn_claim")  # not claimed yet
    await b.call("gate", step="session_lock")
    ends.append(await b.eager_turn(session, "s0 turn 3"))
    await b.call("reached", step="session_lock")
    await b.call("open_gate", step="session_lock")
    await b.call("left", step="session_lock")  # B found turn 2 unclaimed
    await a.call("open_gate", step="turn_claim")
    await assert_only_1_2_summarized(a, b, service, session, ends)


async def assert_only_1_2_summarized(
    a: Worker, b: Worker, service: Any, session: str, ends: List[Any]
) -> None:
    """What one process stores for turns 1-3: the summary of 1-2, by A."""
    # A turn submits its compaction before its stream ends, not before its
    # final reply: drain only once every stream has ended.
    await asyncio.gather(*ends)  # no turn failed
    await asyncio.gather(*(w.call("drain") for w in (a, b)))
    stored = inspect_session(
        await service.get_session(
            app_name=APP_NAME, user_id=USER_ID, session_id=session
        )
    )
    assert stored.user_messages == [f"s0 turn {t}" for t in (1, 2, 3)]
    assert stored.summary_ranges == [(1, 2)]  # not (1, 3)
    assert (await a.call("calls"), await b.call("calls")) == (1, 0)
    assert await a.call("warnings") == await b.call("warnings") == []


def lock_is_free(db_url: str, session_id: str) -> bool:
    """Whether this session's advisory lock can be taken right now (and let go)."""
    import psycopg2

    key = int.from_bytes(_digest(APP_NAME, USER_ID, session_id)[:8], "big", signed=True)
    connection = psycopg2.connect(db_url)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", (key,))
            return bool(cursor.fetchone()[0])
    finally:
        connection.close()  # lets go of it, if taken


@pytest.mark.asyncio(loop_scope="module")
async def test_a_worker_killed_mid_compaction_holds_up_nothing(
    started: List[Worker], url: str, postgres_db_url: str, tmp_path: Path
) -> None:
    victim = await Worker.start(tmp_path / "victim.err")
    try:
        other = started[0]
        await open_on([victim, other], url)
        service = service_on(url)
        session = await new_session(service)
        await victim.call("hold_summarizer")
        await (await other.eager_turn(session, "s0 turn 1"))
        await victim.eager_turn(session, "s0 turn 2")
        await victim.call("summarizer_entered", calls=1)  # it holds the lock
        assert not lock_is_free(postgres_db_url, session)
        await victim.kill()
        # The other worker's next compaction (turns 1-3) takes the lock the
        # dead worker's connection held, without waiting out the time limit.
        await (await other.eager_turn(session, "s0 turn 3"))
        await other.call("drain")
        stored = inspect_session(
            await service.get_session(
                app_name=APP_NAME, user_id=USER_ID, session_id=session
            )
        )
        assert stored.user_messages == [f"s0 turn {t}" for t in (1, 2, 3)]
        assert stored.summary_ranges == [(1, 3)]
        assert await other.call("calls") == 1
        assert await other.call("warnings") == []
        assert lock_is_free(postgres_db_url, session)
    finally:
        await victim.stop()


@pytest.fixture
def cluster() -> Iterator[ThrowawayCluster]:
    """A PostgreSQL cluster of this test's own, which it may restart."""
    try:
        started = ThrowawayCluster.start()
    except PostgresUnavailable as error:
        pytest.skip(str(error))
    try:
        yield started
    finally:
        started.stop()


@pytest.mark.asyncio(loop_scope="module")
async def test_a_database_restart_loses_nothing_and_leaks_no_lock(
    started: List[Worker], cluster: ThrowawayCluster
) -> None:
    db = create_database(cluster.url)
    try:
        url = engine_url(Database("postgresql", db))
        a, b = started[:2]
        await open_on([a, b], url, pool_pre_ping=True)
        service = DatabaseSessionService(db_url=url, pool_pre_ping=True)
        session = await new_session(service)
        await b.call("hold_summarizer")
        await (await a.eager_turn(session, "s0 turn 1"))
        ends = [await b.eager_turn(session, "s0 turn 2")]
        await b.call("summarizer_entered", calls=1)  # B holds the lock
        await asyncio.to_thread(cluster.restart)  # every connection dropped
        await b.call("release_summarizer")
        await b.call("drain")  # stored through a new connection
        for turn in range(3, 7):  # B's lock connection is opened again
            worker = (a, b)[(turn - 1) % 2]
            ends.append(await worker.eager_turn(session, f"s0 turn {turn}"))
        await asyncio.gather(*ends)  # no turn failed; every compaction submitted
        await asyncio.gather(*(w.call("drain") for w in (a, b)))
        stored = inspect_session(
            await service.get_session(
                app_name=APP_NAME, user_id=USER_ID, session_id=session
            )
        )
        assert stored.user_messages == [f"s0 turn {t}" for t in range(1, 7)]
        assert stored.summary_ranges == [(1, 2), (2, 4), (4, 6)]
        assert await a.call("calls") + await b.call("calls") == 3
        assert lock_is_free(db, session)
    finally:
        drop_database(cluster.url, db)
