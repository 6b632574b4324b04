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
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
import sys
import uuid
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import pytest
import pytest_asyncio
from google.adk.sessions.database_session_service import DatabaseSessionService
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from _postgres import Database
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


class Worker:
    """The client's side of one worker process."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self._ids = itertools.count(1)
        self._waiting: Dict[Tuple[int, str], asyncio.Future] = {}
        self._reader = asyncio.ensure_future(self._read())

    @classmethod
    async def start(cls, stderr: Path) -> Worker:
        env = dict(os.environ, PYTHONWARNINGS="ignore")
        with stderr.open("w") as sink:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                str(HERE / "_mp_worker.py"),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=sink,
                env=env,
                cwd=str(HERE),
            )
        return cls(process)

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for line in self.process.stdout:
            message = json.loads(line)
            future = self._future(message["id"], message["kind"])
            if not future.done():
                future.set_result(message)
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(EOFError("the worker exited"))

    def _future(self, number: int, kind: str) -> asyncio.Future:
        return self._waiting.setdefault(
            (number, kind), asyncio.get_running_loop().create_future()
        )

    def send(self, op: str, **args: Any) -> int:
        number = next(self._ids)
        assert self.process.stdin is not None
        line = json.dumps({"id": number, "op": op, **args}) + "\n"
        self.process.stdin.write(line.encode())
        return number

    async def result(self, number: int) -> Any:
        message = await asyncio.wait_for(self._future(number, "result"), 120)
        if "error" in message:
            raise RuntimeError(f"worker: {message['error']}")
        return message["value"]

    async def call(self, op: str, **args: Any) -> Any:
        return await self.result(self.send(op, **args))

    async def eager_turn(self, session: str, text: str) -> asyncio.Future:
        """Send a turn; return at its final reply with the end of its stream."""
        number = self.send("turn", session=session, text=text, eager=True)
        done = asyncio.ensure_future(self.result(number))
        final = self._future(number, "final")
        await asyncio.wait([final, done], return_when=asyncio.FIRST_COMPLETED)
        return done

    async def stop(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            await asyncio.wait_for(self.process.wait(), 60)
        except asyncio.TimeoutError:
            self.process.kill()
        await self._reader


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
async def test_a_summary_overtaken_by_the_other_processs_turn_is_stored(
    workers: List[Worker], storage: Any
) -> None:
    a, b = workers
    _, session = storage
    await a.call("hold_summarizer")
    ends = await summary_of_1_2_held_in(b, a, session)
    ends.append(await a.eager_turn(session, text(3)))  # moves update_time
    await a.call("summarizer_entered", calls=1)  # turn 3 is stored, A summarizes
    await b.call("release_summarizer")
    await b.call("drain")  # B's write was stale: re-read and stored
    assert (await stored(storage)).summary_ranges == [(1, 2)]

    # A, which could not know of B's summary, summarized 1-3 meanwhile: single
    # flight is per process, so both are kept (each once). From 1.20 B's
    # summary made A's write stale too: re-read and stored.
    await a.call("release_summarizer")
    await a.call("drain")
    await asyncio.gather(*ends)  # no turn failed
    findings = await stored(storage)
    assert findings.summary_ranges == [(1, 2), (1, 3)]
    assert findings.user_messages == [text(n) for n in (1, 2, 3)]
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

    findings = await stored(storage)
    if EVERY_APPEND_MOVES_THE_REVISION:
        # A's summary made turn 3's reply write stale: turn 3 took the summary
        # and wrote again, so B knows 1-2 are summarized (the next compaction
        # is due at turn 4).
        assert findings.summary_ranges == [(1, 2)]
        assert await b.call("summarizer_entered", calls=0) == 0
    else:
        # B's turn 3 never learnt of A's summary, so B summarizes 1-3 too
        # (single flight is per process); both are kept, each once.
        assert findings.summary_ranges == [(1, 2), (1, 3)]
    assert findings.user_messages == [text(n) for n in (1, 2, 3)]
    assert len(findings.replies) == 3
    assert await a.call("warnings") == [] and await b.call("warnings") == []


@pytest.mark.asyncio(loop_scope="module")
async def test_a_summary_the_other_process_already_covered_is_dropped(
    workers: List[Worker], storage: Any
) -> None:
    a, b = workers
    _, session = storage
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
