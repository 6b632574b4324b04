"""The catch-up rule: which newer stored events a turn may take, and in what order.

The rule is pure (no database); one test runs the whole catch-up through a real
session service, on every back end of the ``database`` fixture.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

import pytest
from google.adk.events.event import Event
from google.adk.events.event_actions import EventActions, EventCompaction
from google.genai import types
from packaging.version import Version

from adk_compaction_backport._catch_up import (
    caught_up_with_summaries,
    events_after_catch_up,
    is_plain_summary,
    put_in_storage_order,
)
from adk_compaction_backport.families import _awaited
from harness import (
    BACKPORT_ONLY,
    family_for,
    installed_adk_version,
    session_service,
)


def said(text: str, at: Optional[float] = None, **actions: Any) -> Event:
    content = types.Content(role="user", parts=[types.Part(text=text)])
    event = Event(author="user", content=content, actions=EventActions(**actions))
    if at is not None:
        event.timestamp = at
    return event


def summary(at: Optional[float] = None, **actions: Any) -> Event:
    compaction = EventCompaction(
        start_timestamp=0.0,
        end_timestamp=1.0,
        compacted_content=types.Content(role="model", parts=[types.Part(text="s")]),
    )
    event = Event(author="user", actions=EventActions(compaction=compaction, **actions))
    if at is not None:
        event.timestamp = at
    return event


def ids(events: Optional[List[Event]]) -> Optional[List[str]]:
    return None if events is None else [event.id for event in events]


def test_a_summary_that_landed_after_the_turns_last_event_goes_last():
    one, two, landed = said("one", 1.0), said("two", 2.0), summary(3.0)
    assert ids(events_after_catch_up([one, two], [one, two, landed])) == ids(
        [one, two, landed]
    )


def test_a_summary_older_than_the_turns_last_event_goes_where_storage_puts_it():
    # The turn created "two" (its pending write) before the summary landed.
    one, landed, two = said("one", 1.0), summary(2.0), said("two", 3.0)
    assert ids(events_after_catch_up([one, two], [one, landed])) == ids(
        [one, landed, two]
    )


def test_a_second_catch_up_keeps_storages_order():
    # After the first catch-up the retried event was appended after the summary
    # in memory, though it is older; storage returns it before.
    one, pending, first, second = (
        said("1", 1.0),
        said("2", 2.0),
        summary(3.0),
        summary(4.0),
    )
    turn = [one, first, pending]
    stored = [one, pending, first, second]
    assert ids(events_after_catch_up(turn, stored)) == ids(stored)


def test_equal_timestamps_are_ordered_by_id():
    one, landed = said("one", 5.0), summary(5.0)
    expected = sorted([one, landed], key=lambda event: event.id)
    assert ids(events_after_catch_up([one], [landed])) == ids(expected)


def test_nothing_newer_leaves_the_turns_events_as_they_are():
    one, two = said("one", 1.0), said("two", 2.0)
    assert ids(events_after_catch_up([one, two], [one, two])) == ids([one, two])


@pytest.mark.parametrize(
    "newer",
    [
        pytest.param(said("another turn", 3.0), id="another turn's message"),
        pytest.param(summary(3.0, state_delta={"topic": "x"}), id="summary with state"),
        pytest.param(
            summary(3.0, artifact_delta={"f.txt": 1}), id="summary with artifact"
        ),
    ],
)
def test_anything_but_a_plain_summary_is_a_conflict(newer: Event):
    one = said("one", 1.0)
    assert events_after_catch_up([one], [one, summary(2.0), newer]) is None


def test_a_plain_summary_is_a_compaction_without_any_delta():
    assert is_plain_summary(summary())
    assert not is_plain_summary(said("hello"))
    assert not is_plain_summary(summary(state_delta={"k": "v"}))
    assert not is_plain_summary(summary(artifact_delta={"f.txt": 0}))


@pytest.mark.parametrize(
    "delta", [{}, {"topic": "billing"}], ids=["plain", "with state"]
)
@pytest.mark.asyncio
async def test_a_turns_session_catches_up_through_a_real_service(
    database: Any, delta: Dict[str, str]
):
    service = session_service(database)
    key = {"app_name": "app", "user_id": "u", "session_id": "s"}
    await service.create_session(**key, state={"seen": "yes"})
    await service.append_event(await service.get_session(**key), said("one"))
    turn = await service.get_session(**key)
    pending = said("two")  # created before the summary landed
    await service.append_event(
        await service.get_session(**key), summary(state_delta=delta)
    )

    caught_up = await caught_up_with_summaries(service, turn)

    assert caught_up == (not delta)
    if delta:
        assert [event.content.parts[0].text for event in turn.events] == ["one"]
        return
    await service.append_event(turn, pending)
    put_in_storage_order(turn)
    stored = await service.get_session(**key)
    assert ids(turn.events) == ids(stored.events)
    assert [event.id for event in stored.events][1] == pending.id
    assert turn.state == stored.state == {"seen": "yes"}


async def _written_while_summaries_land(database: Any, landings: int) -> Any:
    """A turn's write that finds a summary stored by another process before
    each of its first ``landings`` attempts; storage's session afterwards."""
    service, elsewhere = session_service(database), session_service(database)
    key = {"app_name": "app", "user_id": "u", "session_id": "s"}
    await service.create_session(**key)
    await service.append_event(await service.get_session(**key), said("one"))
    turn = await service.get_session(**key)

    async def behind_each_time(svc: Any, session: Any, event: Any) -> Any:
        nonlocal landings
        if landings:
            landings -= 1  # another process's summary, between read and write
            stored = await elsewhere.get_session(**key)
            await elsewhere.append_event(stored, summary())
        return await type(svc).append_event(svc, session=session, event=event)

    try:
        await _awaited._appended_catching_up(
            behind_each_time, service, turn, said("two")
        )
        stored = await service.get_session(**key)
        assert ids(turn.events) == ids(stored.events)
        return stored
    finally:
        for each in (service, elsewhere):
            if hasattr(each, "close"):
                await each.close()


CATCHING_UP = pytest.mark.skipif(
    Version(installed_adk_version() or "0") < Version("1.20")
    or getattr(family_for(installed_adk_version()), "name", None) == "1.24",
    reason="a summary makes a turn's write stale from 1.20 (before, appends"
    " without a state delta do not move update_time); 1.24-1.27 reload a stale"
    " session and write instead of failing",
)


@BACKPORT_ONLY
@CATCHING_UP
@pytest.mark.asyncio
async def test_a_turns_write_outlasts_five_summaries_landing_in_a_row(
    database: Any,
):
    """With the cross-process lock off, two processes' summaries (and this
    process's own, stored through a read) landed three times during one
    write of a turn on a loaded machine: the write is stored, after them."""
    stored = await _written_while_summaries_land(database, 5)
    texts = [e.content.parts[0].text for e in stored.events if e.content]
    assert texts == ["one", "two"]
    assert len(stored.events) == 2 + 5


@BACKPORT_ONLY
@CATCHING_UP
@pytest.mark.asyncio
async def test_a_turns_write_stays_stale_once_summaries_land_past_the_limit(
    database: Any,
):
    """Bounded: a write overtaken before every attempt fails as upstream's."""
    with pytest.raises(Exception) as raised:
        await _written_while_summaries_land(database, _awaited.CATCH_UP_ATTEMPTS)
    assert _awaited.COORDINATOR.is_stale(raised.value)
