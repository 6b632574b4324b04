"""Races of google-adk 1.19-2.13, staged deterministically on real databases.

From 1.19 a turn's stream ends only after its compaction. An eager client
sends the next message at the final reply, so the next turn overlaps the
summarizer. A test is marked ``race`` on the releases where it fails without
the fix (``test_unpatched_proof.py`` checks that it does); elsewhere it still
runs, as a check that the fix keeps upstream's behaviour.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any, Callable, Optional

import pytest
from google.adk.runners import Runner
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from _holders import Holder
from _postgres import Database
from adk_compaction_backport._activation import installed_adk_version
from adk_compaction_backport._guards import family_for
from adk_compaction_backport.verify.analysis import inspect_session
from adk_compaction_backport.verify.scenario import USER_ID
from harness import (
    KEEPING_SUMMARIES_ONLY,
    KEEPS_EACH_SUMMARY,
    OTHER_FAMILY,
    Conversation,
    assert_late_summary_in_place,
    background_work_done,
    fix_under_test,
    service_class,
)

FAMILY = getattr(family_for(installed_adk_version()), "name", None)
adk_release = Version(installed_adk_version() or "0")
pytestmark = pytest.mark.skipif(
    FAMILY not in ("1.19", "1.24", "1.28", "2.7")
    and not (fix_under_test() == "upstream-patch" and adk_release >= Version("2.7")),
    reason=OTHER_FAMILY + "google-adk 1.19-2.13 only",
)
backport_only = pytest.mark.skipif(
    fix_under_test() == "upstream-patch",
    reason="covers what only the backport package does",
)
# 1.24-1.27 reload a stale session and write anyway: no stale error to keep.
upstream_detects_conflicts = pytest.mark.skipif(
    adk_release in SpecifierSet(">=1.24,<1.28"),
    reason="1.24-1.27 merge conflicting writes instead of rejecting them",
)


# Where a test that holds a turn's read of the session stages a stale turn:
# 2.2 - 2.4 read it twice (the chat-mode root's read, then the node runtime's
# own, which the turn writes through; 2.5 passes the first one on), so the
# held read is not the one the turn's writes are checked against.
HELD_READ_IS_THE_TURNS = (">=1.19,<2.2", ">=2.5")


def race_where(*releases: str, held_read: bool = False) -> Callable[[Any], Any]:
    """Mark ``race`` where these releases fail without the fix (``held_read``:
    and where holding the turn's read stages it, ``HELD_READ_IS_THE_TURNS``)."""
    fails = any(adk_release in SpecifierSet(spec) for spec in releases)
    if held_read:
        fails = fails and any(
            adk_release in SpecifierSet(spec) for spec in HELD_READ_IS_THE_TURNS
        )
    if fails:
        return pytest.mark.race
    return lambda test: test


class Pausing:
    """Holds the next turn right after it has read the session (a mixin)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pause_next_read: Optional[asyncio.Event] = None
        self.read_done = asyncio.Event()

    async def get_session(self, **kwargs: Any) -> Any:
        session = await super().get_session(**kwargs)
        resume, self.pause_next_read = self.pause_next_read, None
        if resume is not None:
            self.read_done.set()
            await resume.wait()
        return session


async def pausing_conversation(database: Any, routed: bool = False) -> Conversation:
    """A conversation whose service can hold a read; ``routed``: the service is
    the per-app router ``adk web`` and ``adk api_server`` use by default."""
    chat = Conversation(database)
    if routed:
        base, arguments = router_class(), {"agents_root": os.path.dirname(database.raw)}
    else:
        base, arguments = service_class(database)
    chat.service = type(f"Pausing{base.__name__}", (Pausing, base), {})(**arguments)
    chat.runner = Runner(app=chat.app, session_service=chat.service)
    return await chat.start()


def router_class() -> Any:
    """``PerAgentDatabaseSessionService`` (SQLite files per app; 1.19+)."""
    from google.adk.cli.utils.local_storage import PerAgentDatabaseSessionService

    return PerAgentDatabaseSessionService


def _has_router() -> bool:
    try:
        router_class()
    except ImportError:
        return False
    return True


ROUTER = _has_router()


async def user_messages(chat: Conversation) -> int:
    return len(inspect_session(await chat.stored()).user_messages)


@race_where(">=1.19")
@pytest.mark.asyncio
async def test_eager_next_turn_neither_fails_nor_waits_for_the_summary(database):
    chat = await Conversation(database).start()
    gate = chat.control.hold()
    first = await chat.eager_turn()
    second = await chat.eager_turn()  # its summary of turns 1-2 is held
    await chat.control.wait_for_calls(1)
    third = await chat.eager_turn()  # got its reply while the summarizer waits
    assert not gate.is_set()

    gate.set()
    await asyncio.gather(first, second, third)  # no stream ends in an error
    await background_work_done()
    # Without keeping each summary, turn 3 overtook the summary of 1-2 (it is
    # discarded, as upstream documents) and turn 3's compaction covers 1-3.
    expected = [(1, 2)] if KEEPS_EACH_SUMMARY else [(1, 3)]
    assert await chat.summary_ranges() == expected
    assert await user_messages(chat) == 3


@race_where(">=1.19,<1.24", ">=1.28", held_read=True)
@pytest.mark.asyncio
async def test_a_turn_that_read_the_session_before_the_summary_landed(database):
    await read_before_the_summary_landed(await pausing_conversation(database))


@(race_where(">=1.19,<1.24", ">=1.28", held_read=True) if ROUTER else lambda test: test)
@pytest.mark.skipif(not ROUTER, reason="no per-app session router in this release")
@pytest.mark.asyncio
async def test_the_same_in_the_default_storage_of_adk_web(tmp_path):
    """``adk web`` / ``adk api_server`` keep sessions in a per-app router."""
    database = Database(kind="sqlite", raw=str(tmp_path / "unused.db"))
    await read_before_the_summary_landed(
        await pausing_conversation(database, routed=True)
    )


async def read_before_the_summary_landed(chat: Conversation) -> None:
    gate = chat.control.hold()
    first = await chat.eager_turn()
    second = await chat.eager_turn()
    await chat.control.wait_for_calls(1)
    resume = asyncio.Event()
    chat.service.pause_next_read = resume
    third = asyncio.ensure_future(chat.eager_turn())
    await chat.service.read_done.wait()  # turn 3 holds a pre-summary session

    gate.set()
    await second  # the summary has landed
    resume.set()
    await asyncio.gather(first, await third)  # turn 3 writes: not stale
    await background_work_done()
    assert await chat.summary_ranges() == [(1, 2)]
    assert await user_messages(chat) == 3


async def summaries_of_1_2_and_2_4(first: Conversation, then: Conversation) -> None:
    """Turns 1-2 on ``first``; 3-4 on ``then`` while the summary of 1-2 is held."""
    gate = first.control.hold()
    tails = [await first.eager_turn(), await first.eager_turn()]
    await first.control.wait_for_calls(1)
    then.turns = first.turns
    tails += [await then.eager_turn(), await then.eager_turn()]  # compacts 2-4

    gate.set()
    await asyncio.gather(*tails)
    await background_work_done()
    assert await first.summary_ranges() == [(1, 2), (2, 4)]
    assert first.control.calls == 2


@KEEPING_SUMMARIES_ONLY
@race_where(">=1.19")
@pytest.mark.asyncio
async def test_next_compaction_waits_for_the_previous_one_and_builds_on_it(database):
    chat = await Conversation(database).start()
    await summaries_of_1_2_and_2_4(chat, chat)


@backport_only
@race_where(">=1.19")
@pytest.mark.asyncio
async def test_a_new_service_and_runner_per_request_still_coordinate(database):
    chat = await Conversation(database).start()
    # A web app that builds a fresh session service and runner per request:
    # services on the same database (URL or SQLite file) share the bookkeeping.
    await summaries_of_1_2_and_2_4(chat, Conversation(database, control=chat.control))


@backport_only
@pytest.mark.asyncio
async def test_a_compaction_queued_behind_another_does_not_hold_its_stream(database):
    # Issue #12: an eager client's stream ends no later than released
    # google-adk's; the queued compaction lands afterwards, tracked.
    chat = await Conversation(database).start()
    gate = chat.control.hold()
    first = await chat.eager_turn()
    second = await chat.eager_turn()  # its summary of turns 1-2 is held
    await chat.control.wait_for_calls(1)
    later = [await chat.eager_turn(), await chat.eager_turn()]  # queued behind it
    await asyncio.wait_for(asyncio.gather(first, second, *later), timeout=10)
    assert not gate.is_set() and chat.control.calls == 1  # every stream ended

    gate.set()
    await background_work_done()
    assert await chat.summary_ranges() == [(1, 2), (2, 4)]
    assert chat.control.calls == 2


@backport_only
@pytest.mark.asyncio
async def test_a_held_stream_ends_when_the_next_turn_of_its_session_starts(database):
    # Issue #12: the stream of a turn whose compaction runs at once ends after
    # its summary (a sequential client finds it stored), unless the client
    # sends the next message first (eager): then it ends at once, and the
    # summary lands afterwards, tracked.
    chat = await Conversation(database).start()
    gate = chat.control.hold()
    await (await chat.eager_turn())
    second = await chat.eager_turn()  # its compaction (turns 1-2) runs, held
    await chat.control.wait_for_calls(1)
    await asyncio.wait({second}, timeout=0.2)
    assert not second.done()  # nothing else happened: it waits for its summary

    third = await chat.eager_turn()  # the client did not wait for that stream
    await asyncio.wait_for(second, timeout=10)
    assert not gate.is_set() and await chat.summary_ranges() == []

    gate.set()
    await third
    await background_work_done()
    assert await chat.summary_ranges() == [(1, 2)]
    assert chat.control.calls == 1


def lock_spec(service: Any) -> str:
    """Where ``service`` keeps its cross-process locks, for ``_lock_holder.py``."""
    engine = getattr(service, "db_engine", None)
    if engine is None:
        return f"file:{service._db_path}"  # SqliteSessionService
    return engine.url.render_as_string(hide_password=False)


@backport_only
@pytest.mark.multiprocess
@pytest.mark.asyncio
async def test_a_compaction_waiting_for_another_process_does_not_hold_its_stream(
    database,
):
    chat = await Conversation(database).start()
    other = Holder(lock_spec(chat.service), chat.session_id, chat.app.name, USER_ID)
    try:
        assert other.said() == "held"  # another worker compacts this session
        await chat.turn()
        await asyncio.wait_for(chat.turn(), timeout=10)  # compaction 1-2 waits
        assert chat.control.calls == 0

        other.release()
        await background_work_done()
        assert await chat.summary_ranges() == [(1, 2)]
    finally:
        other.stop()


@backport_only
@race_where(">=1.19")
@pytest.mark.asyncio
async def test_a_reader_that_goes_away_during_compaction_still_gets_it(database):
    chat = await Conversation(database).start()
    gate = chat.control.hold()
    await (await chat.eager_turn())
    rest_of_turn_two = await chat.eager_turn()
    await chat.control.wait_for_calls(1)
    rest_of_turn_two.cancel()  # e.g. the HTTP client disconnected

    gate.set()
    await background_work_done()
    assert await chat.summary_ranges() == [(1, 2)]


@KEEPING_SUMMARIES_ONLY
@race_where(">=1.19,<1.25")
@pytest.mark.asyncio
async def test_a_late_summary_takes_the_place_of_its_range_in_the_context(database):
    chat = await Conversation(database).start()
    gate = chat.control.hold()
    tails = [await chat.eager_turn(), await chat.eager_turn()]
    await chat.control.wait_for_calls(1)
    tails.append(await chat.eager_turn())  # turn 3 is stored before the summary
    gate.set()
    await asyncio.gather(*tails)
    await background_work_done()
    await chat.turn()

    assert_late_summary_in_place(chat.last_prompt())


@upstream_detects_conflicts
@pytest.mark.skipif(
    not any(adk_release in SpecifierSet(spec) for spec in HELD_READ_IS_THE_TURNS),
    reason="the turn writes through a second read of its own (2.2 - 2.4)",
)
@pytest.mark.asyncio
async def test_two_user_turns_that_conflict_still_fail(database):
    if adk_release == Version("1.19.0") and database.kind == "sqlite":
        pytest.skip("1.19.0 on SQLite does not detect this conflict either")
    chat = await pausing_conversation(database)
    resume = asyncio.Event()
    chat.service.pause_next_read = resume
    stale = asyncio.ensure_future(chat.turn())  # turn 1 read the session, waits
    await chat.service.read_done.wait()
    await chat.turn()  # turn 2 writes its message and reply in the meantime

    resume.set()
    with pytest.raises(ValueError, match=r"stale|modified in storage"):
        await stale
