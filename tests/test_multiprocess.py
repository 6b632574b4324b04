"""Two worker processes serve the same sessions from one PostgreSQL database.

Each worker (``_mp_worker.py``) is a separate interpreter with the package
active through its start-up hook. An eager client alternates turns between
them; the fake summarizer and the agent's model are held on events inside the
workers, so every collision below is staged, not hoped for.

On 1.16-1.18 a turn's reply writes session state (``output_key``), which moves
``sessions.update_time``; a summary carries no state delta and moves nothing.
So the summary write is what goes stale when the other process ran a turn, and
a summary can never make the other process's turn stale.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import sys
import uuid
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest
import pytest_asyncio
from google.adk.sessions.database_session_service import DatabaseSessionService

from _postgres import Database
from adk_compaction_backport.verify.analysis import inspect_session
from adk_compaction_backport.verify.fake_model import APP_NAME
from adk_compaction_backport.verify.scenario import USER_ID
from harness import BACKPORT_ONLY, ONLY_1_16, engine_url

HERE = Path(__file__).parent
STALE = "stale session"  # the words of upstream's 1.x stale-session ValueError

pytestmark = [pytest.mark.multiprocess, ONLY_1_16, BACKPORT_ONLY]


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
        number = self.send("turn", session=session, text=text)
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

    Returns the ends of both turns' streams (the client did not wait for them).
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
    await ends[-1]
    await b.call("release_summarizer")
    await b.call("drain")  # B's write was stale: re-read and stored
    await asyncio.gather(*ends)  # no turn failed
    assert (await stored(storage)).summary_ranges == [(1, 2)]

    # A, which could not know of B's summary, summarized 1-3 meanwhile: single
    # flight is per process, so both are kept (each once).
    await a.call("release_summarizer")
    await a.call("drain")
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
    await asyncio.gather(*await summary_of_1_2_held_in(a, b, session))
    await b.call("hold_model")
    turn_3 = b.send("turn", session=session, text=text(3))
    await b.call("model_entered")  # turn 3 has loaded the session
    await a.call("release_summarizer")
    await a.call("drain")  # the summary landed under turn 3's feet
    await b.call("release_model")
    await b.result(turn_3)  # turn 3 stores its reply and state
    # B's turn 3 loaded the session before A's summary landed, so B summarizes
    # 1-3 too (single flight is per process); both are kept, each once.
    await b.call("drain")

    findings = await stored(storage)
    assert findings.summary_ranges == [(1, 2), (1, 3)]
    assert len(findings.replies) == 3
    assert await a.call("warnings") == [] and await b.call("warnings") == []


@pytest.mark.asyncio(loop_scope="module")
async def test_a_summary_the_other_process_already_covered_is_dropped(
    workers: List[Worker], storage: Any
) -> None:
    a, b = workers
    _, session = storage
    await asyncio.gather(*await summary_of_1_2_held_in(b, a, session))
    await (await a.eager_turn(session, text(3)))  # A, unaware, summarizes 1-3
    await a.call("drain")
    await b.call("release_summarizer")
    await b.call("drain")

    findings = await stored(storage)
    assert findings.summary_ranges == [(1, 3)]
    assert any("dropped ours" in w for w in await b.call("warnings"))
    assert await a.call("warnings") == []


@pytest.mark.asyncio(loop_scope="module")
async def test_conflicting_turns_in_two_processes_still_raise_upstreams_error(
    workers: List[Worker], storage: Any
) -> None:
    a, b = workers
    _, session = storage
    await asyncio.gather(a.call("hold_model"), b.call("hold_model"))
    in_a = a.send("turn", session=session, text=text(1))
    in_b = b.send("turn", session=session, text=text(2))
    await asyncio.gather(a.call("model_entered"), b.call("model_entered"))
    await a.call("release_model")
    await a.result(in_a)
    await b.call("release_model")
    with pytest.raises(RuntimeError, match=STALE):
        await b.result(in_b)  # not merged, not hidden

    findings = await stored(storage)
    assert sorted(findings.user_messages) == [text(1), text(2)]
    assert len(findings.replies) == 1
