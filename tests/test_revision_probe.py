"""The one-row revision probe: "unmoved" only when nothing was stored since.

A wrong "unmoved" would let a summary be checked against a stale view (the
checks before every write would miss what landed), so each way storage can
move is tried through the real service, on every back end: another writer's
event, a summary stored with an older timestamp than the session's newest
event (it moves ``update_time`` back), a deletion, a deletion and a session
created again under the same id. Where the probe cannot be exact
(``DatabaseSessionService`` before 1.28) it must always say "moved".
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from adk_compaction_backport._revision_probe import unmoved
from adk_compaction_backport._session_identity import SessionIdentity
from bench.long_sessions import plain_event, summary_event
from harness import session_service

pytestmark = pytest.mark.asyncio

KEY = {"app_name": "app", "user_id": "u", "session_id": "s"}
NAMES = ("app", "u", "s")


def exact_here(service: Any, session: Any) -> bool:
    """Whether the probe can answer "unmoved" for this service and release."""
    if type(service).__name__ == "SqliteSessionService":
        return True
    private = getattr(session, "__pydantic_private__", None) or {}
    return isinstance(private.get("_storage_update_marker"), str)


async def started(database: Any) -> Any:
    service = session_service(database)
    await service.create_session(**KEY)
    session = await service.get_session(**KEY)
    await service.append_event(session, plain_event("i1", "user", time.time()))
    return service, session


async def closed(service: Any) -> None:
    close = getattr(service, "close", None)
    if close is not None:
        await close()


async def test_unmoved_after_the_sessions_own_read_and_write(database: Any) -> None:
    service, written = await started(database)
    read = await service.get_session(**KEY)
    exact = exact_here(service, read)
    try:
        assert await unmoved(service, NAMES, written) is exact
        assert await unmoved(service, NAMES, read) is exact
    finally:
        await closed(service)


@pytest.mark.parametrize("move", ["event", "older summary", "deleted", "recreated"])
async def test_moved_storage_is_never_unmoved(database: Any, move: str) -> None:
    service, turn = await started(database)
    other = await service.get_session(**KEY)
    newest = turn.events[-1].timestamp
    if move == "event":
        await service.append_event(other, plain_event("i2", "user", time.time()))
    elif move == "older summary":  # made before the turn's last event, stored after
        summary = summary_event(newest - 2, newest - 1, newest - 0.5, "late")
        await service.append_event(other, summary)
    else:
        await service.delete_session(**KEY)
        if move == "recreated":
            await service.create_session(**KEY)
            again = await service.get_session(**KEY)  # 1.28-1.39: create's marker
            event = plain_event("i1", "user", newest)  # the same time, even
            await service.append_event(again, event)
    try:
        assert not await unmoved(service, NAMES, turn)
    finally:
        await closed(service)


async def test_a_read_where_nothing_moved_returns_the_turns_events_and_revision(
    database: Any,
) -> None:
    service, turn = await started(database)
    identity = SessionIdentity.of(service, turn)
    try:
        read = await identity.read(turn.events, seen=turn)
        assert [e.id for e in read.events] == [e.id for e in turn.events]
        assert read is not turn and read.events is not turn.events
        # a write through it is as current as through a whole read
        await service.append_event(read, plain_event("i2", "user", time.time()))
        stored = await service.get_session(**KEY)
        assert [e.id for e in stored.events] == [e.id for e in read.events]
    finally:
        await closed(service)


async def test_a_service_the_probe_does_not_know_is_always_moved() -> None:
    from google.adk.sessions import InMemorySessionService

    class Subclass(InMemorySessionService):
        pass

    for service in (InMemorySessionService(), Subclass()):
        session = await service.create_session(**KEY)
        assert not await unmoved(service, NAMES, session)


async def test_no_probe_once_this_processs_newer_turn_has_written(
    database: Any,
) -> None:
    """An eager client's next turn here wrote after the turn the summary is
    for: storage moved for sure, and the read before the write goes straight
    to what is new (a probe would only add a lookup)."""
    from adk_compaction_backport._revision_probe import worth_probing
    from adk_compaction_backport._session_writes import SessionWrites

    service, turn = await started(database)
    seen = turn.model_copy(update={"events": list(turn.events)})  # at turn end
    writes = SessionWrites()
    try:
        writes.loaded(turn)  # the turn's own Session is the current one
        assert worth_probing(seen, writes.current_here()) is seen
        newer = await service.get_session(**KEY)
        writes.loaded(newer)  # the next turn loaded it (the same revision) ...
        assert worth_probing(seen, writes.current_here()) is seen
        # ... then wrote
        await service.append_event(newer, plain_event("i2", "user", time.time()))
        if exact_here(service, turn):  # elsewhere the probe says "moved" anyway
            assert worth_probing(seen, writes.current_here()) is None
    finally:
        await closed(service)
