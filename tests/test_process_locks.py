"""The cross-process lock of one session, on every backend, between processes.

The other process is ``_lock_holder.py`` (no google-adk import, well under a
second to start). Each test stages who holds the lock with the holder's
output, never with sleeps; a "bounded wait" is a short wait limit.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from pathlib import Path
from typing import Iterator, List, Optional

import pytest
from sqlalchemy.engine import make_url

from _holders import Holder
from _lock_holder import storage
from adk_compaction_backport._process_locks import (
    CROSS_PROCESS_VARIABLE,
    claimed_elsewhere,
    session_lock,
    turn_claim,
)
from adk_compaction_backport._session_identity import SessionIdentity
from devtools.ports import free_port

pytestmark = pytest.mark.multiprocess

KINDS = [
    "postgresql+psycopg2",
    "postgresql+asyncpg",
    "mysql+pymysql",
    "mysql+aiomysql",
    "sqlite",
    "sqlite_service",
]


@pytest.fixture(params=KINDS)
def spec(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where the lock lives, as ``_lock_holder.storage`` reads it."""
    kind = str(request.param)
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'sessions.db'}"
    if kind == "sqlite_service":
        return f"file:{tmp_path / 'sessions.db'}"
    fixture = (
        "postgres_server_url" if kind.startswith("postgresql") else "mysql_server_url"
    )
    url = make_url(request.getfixturevalue(fixture)).set(drivername=kind)
    return url.render_as_string(hide_password=False)


@pytest.fixture
def holders() -> Iterator[List[Holder]]:
    started: List[Holder] = []
    yield started
    for holder in started:
        holder.stop()


def hold(holders: List[Holder], spec: str, session_id: str, turn: str = "") -> Holder:
    holder = Holder(spec, session_id, turn=turn)
    holders.append(holder)
    assert holder.said() == "held"
    return holder


def take(spec: str, session_id: str, limit: float) -> Optional[bool]:
    """Try to take the lock here (this test's process); release it at once."""

    async def attempt() -> Optional[bool]:
        identity = SessionIdentity(storage(spec), "app", "user", session_id)
        async with session_lock(identity, limit) as held:
            return held

    return asyncio.run(attempt())


def new_session() -> str:
    return f"s-{uuid.uuid4().hex[:12]}"


def test_one_process_at_a_time(spec: str, holders: List[Holder]) -> None:
    session = new_session()
    holder = hold(holders, spec, session)
    assert take(spec, session, 0.2) is False
    holder.release()
    assert take(spec, session, 5.0) is True
    hold(holders, spec, session)  # and this process let it go again


def test_other_sessions_are_not_held_up(spec: str, holders: List[Holder]) -> None:
    hold(holders, spec, new_session())
    assert take(spec, new_session(), 0.0) is True


def test_the_lock_of_a_killed_process_is_released(
    spec: str, holders: List[Holder]
) -> None:
    session = new_session()
    hold(holders, spec, session).kill()  # SIGKILL: no clean-up of its own
    assert take(spec, session, 30.0) is True


def test_waiting_is_bounded_and_says_so(
    spec: str, holders: List[Holder], caplog: pytest.LogCaptureFixture
) -> None:
    session = new_session()
    hold(holders, spec, session)
    with caplog.at_level(logging.WARNING, logger="adk_compaction_backport"):
        assert take(spec, session, 0.3) is False
    assert any("without the cross-process lock" in m for m in caplog.messages)


def test_turned_off_nothing_is_taken(
    spec: str, holders: List[Holder], monkeypatch: pytest.MonkeyPatch
) -> None:
    session = new_session()
    hold(holders, spec, session)
    monkeypatch.setenv(CROSS_PROCESS_VARIABLE, "0")
    assert take(spec, session, 30.0) is None


@pytest.mark.parametrize("driver", ["postgresql+psycopg2", "postgresql+asyncpg"])
def test_a_database_that_does_not_answer_is_logged_once_and_not_waited_for(
    driver: str, caplog: pytest.LogCaptureFixture
) -> None:
    spec = f"{driver}://postgres@127.0.0.1:{free_port()}/postgres"
    with caplog.at_level(logging.WARNING, logger="adk_compaction_backport"):
        assert take(spec, new_session(), 30.0) is False
        assert take(spec, new_session(), 30.0) is False
    unavailable = [m for m in caplog.messages if "lock is unavailable" in m]
    assert len(unavailable) == 1, caplog.messages


def test_memory_storage_has_nothing_to_take() -> None:
    assert take("sqlite:///:memory:", new_session(), 1.0) is None
    assert take("file::memory:", new_session(), 1.0) is None


def claimed(spec: str, session_id: str, turn: str, own_claim: bool = False) -> bool:
    """Whether this process sees ``turn``'s claim held elsewhere (``own_claim``:
    while holding the same claim itself)."""

    async def ask() -> bool:
        identity = SessionIdentity(storage(spec), "app", "user", session_id)
        if not own_claim:
            return await claimed_elsewhere(identity, turn)
        async with turn_claim(identity, turn) as held:
            assert held
            return await claimed_elsewhere(identity, turn)

    return asyncio.run(ask())


def test_a_claim_is_seen_by_the_other_processes(
    spec: str, holders: List[Holder]
) -> None:
    session = new_session()
    assert not claimed(spec, session, "turn-2")
    holder = hold(holders, spec, session, turn="turn-2")
    assert claimed(spec, session, "turn-2")
    assert not claimed(spec, session, "turn-3")  # another turn
    assert not claimed(spec, new_session(), "turn-2")  # another session
    assert take(spec, session, 0.0) is True  # the session's lock is another lock
    holder.release()
    assert not claimed(spec, session, "turn-2")


def test_a_process_does_not_see_its_own_claim(spec: str) -> None:
    assert not claimed(spec, new_session(), "turn-2", own_claim=True)


def test_the_claim_of_a_killed_process_is_gone(
    spec: str, holders: List[Holder]
) -> None:
    session = new_session()
    hold(holders, spec, session, turn="turn-2").kill()
    for _ in range(300):  # the server notices the closed connection
        if not claimed(spec, session, "turn-2"):
            break
    else:
        pytest.fail("the claim outlived its process")


def test_turned_off_no_claim_is_taken_or_seen(
    spec: str, holders: List[Holder], monkeypatch: pytest.MonkeyPatch
) -> None:
    session = new_session()
    hold(holders, spec, session, turn="turn-2")
    monkeypatch.setenv(CROSS_PROCESS_VARIABLE, "0")
    assert not claimed(spec, session, "turn-2")
