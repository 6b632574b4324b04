"""A turn's write that SQLite refuses for lock contention does not fail the turn.

Issue #22: twenty eager sessions of 1,000 events on one ``adk api_server``
and one SQLite file failed 7 - 24 turns of 160 with ``database is locked``,
each a turn's first write statement after waiting SQLite's 5 s busy timeout
for the database's write lock (``_lock_contention``). Staged here with a
second connection holding that lock (``BEGIN IMMEDIATE``) while a turn
writes: the turn's write waits out the busy timeout and is refused; the
holder lets go when the package says it makes the write again. Released
google-adk fails the turn with ``database is locked``.
"""

from __future__ import annotations

import logging
import sqlite3
from types import SimpleNamespace
from typing import Any, Iterator

import pytest

from adk_compaction_backport import _lock_contention
from adk_compaction_backport._activation import installed_adk_version
from adk_compaction_backport._guards import family_for
from adk_compaction_backport._lock_contention import (
    is_lock_contention,
    retried_on_lock_contention,
)
from adk_compaction_backport.verify.analysis import inspect_session
from harness import OTHER_FAMILY, Conversation

FAMILY = getattr(family_for(installed_adk_version()), "name", None)
pytestmark = pytest.mark.skipif(
    FAMILY not in ("1.19", "1.24", "1.28", "2.7"),
    reason=OTHER_FAMILY + "google-adk 1.19-2.13 only",
)


@pytest.fixture(params=["sqlite", "sqlite_service"])
def database_kind(request: pytest.FixtureRequest) -> str:
    """Both services on a SQLite file: DatabaseSessionService and
    SqliteSessionService (skipped before 1.19 by ``database``)."""
    if request.param == "sqlite" and FAMILY == "1.24":
        pytest.skip(
            OTHER_FAMILY + "1.24-1.27's DatabaseSessionService turns are "
            "upstream's writes"
        )
    return str(request.param)


class WriteLockHolder(logging.Handler):
    """Holds the database's write lock until the package retries a write."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.retries = 0
        self._connection = sqlite3.connect(
            path, isolation_level=None, check_same_thread=False
        )
        self._connection.execute("BEGIN IMMEDIATE")

    def emit(self, record: logging.LogRecord) -> None:
        if "making it again" in record.getMessage():
            self.retries += 1
            self.release()

    def release(self) -> None:
        if self._connection.in_transaction:
            self._connection.execute("ROLLBACK")

    def close(self) -> None:
        self.release()
        self._connection.close()
        super().close()


@pytest.fixture
def lock_holder(database: Any) -> Iterator[Any]:
    def hold() -> WriteLockHolder:
        holder = WriteLockHolder(database.raw)
        logger.addHandler(holder)
        holders.append(holder)
        return holder

    logger = logging.getLogger("adk_compaction_backport")
    holders: list = []
    yield hold
    for holder in holders:
        logger.removeHandler(holder)
        holder.close()


@pytest.mark.race
@pytest.mark.asyncio
async def test_a_turn_whose_write_waited_out_sqlites_busy_timeout(
    database, lock_holder
):
    chat = await Conversation(database).start()
    await chat.turn()
    holder = lock_holder()
    await chat.turn()  # its first write waits for the held lock
    assert holder.retries == 1
    stored = inspect_session(await chat.stored())
    assert stored.user_messages == ["s0 turn 1", "s0 turn 2"]  # each once
    assert stored.replies == ["reply to s0 turn 1", "reply to s0 turn 2"]


def test_only_sqlite_lock_contention_is_retried():
    from sqlalchemy.exc import OperationalError

    locked = sqlite3.OperationalError("database is locked")
    assert is_lock_contention(locked)
    assert is_lock_contention(OperationalError("UPDATE sessions", {}, locked))
    assert not is_lock_contention(sqlite3.OperationalError("no such table: events"))
    assert not is_lock_contention(sqlite3.IntegrityError("database is locked"))
    assert not is_lock_contention(ValueError("database is locked"))


class Refusing:
    """A write that raises ``error`` its first ``times`` calls."""

    def __init__(self, error: Exception, times: int) -> None:
        self.calls = 0
        self._error = error
        self._times = times

    async def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self._times:
            raise self._error
        return "stored"


@pytest.mark.asyncio
async def test_lock_contention_is_retried_a_bounded_number_of_times(monkeypatch):
    monkeypatch.setattr(_lock_contention, "PAUSE", 0.0)
    attempts = _lock_contention.ATTEMPTS
    session = SimpleNamespace(id="s")
    locked = Refusing(sqlite3.OperationalError("database is locked"), attempts - 1)
    assert await retried_on_lock_contention(locked, session) == "stored"
    assert locked.calls == attempts
    always = Refusing(sqlite3.OperationalError("database is locked"), attempts)
    with pytest.raises(sqlite3.OperationalError) as refused:
        await retried_on_lock_contention(always, session)
    assert always.calls == attempts
    if hasattr(refused.value, "__notes__"):  # Python 3.11+
        assert "refused this write" in refused.value.__notes__[0]
    other = Refusing(sqlite3.OperationalError("no such table: events"), 1)
    with pytest.raises(sqlite3.OperationalError):
        await retried_on_lock_contention(other, session)
    assert other.calls == 1
