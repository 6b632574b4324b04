"""Outside a Runner turn the package is transparent (issue #12).

A test suite, a tool or an app that calls upstream's compaction function or
``append_event`` itself, outside ``Runner.run_async``, gets what released
google-adk does: the same yields, the same writes, the same errors. Each test
runs the same direct call twice, with the wrappers doing their work and with
them passing through (``_patching.set_active(False)``), and compares.
"""

from __future__ import annotations

import inspect
from typing import Any, Awaitable, Callable, Tuple

import pytest
from google.adk.events.event import Event
from google.adk.events.event_actions import EventActions, EventCompaction
from google.adk.runners import Runner
from google.genai import types

from adk_compaction_backport import _patching
from adk_compaction_backport._activation import installed_adk_version
from adk_compaction_backport._guards import family_for
from adk_compaction_backport.verify.fake_model import APP_NAME
from adk_compaction_backport.verify.scenario import USER_ID
from harness import OTHER_FAMILY, Conversation, fix_under_test

FAMILY = getattr(family_for(installed_adk_version()), "name", None)
pytestmark = pytest.mark.skipif(
    FAMILY is None or fix_under_test() == "upstream-patch",
    reason=OTHER_FAMILY + "a release the package claims, with the package on",
)


def _compaction_function() -> Any:
    """The name upstream's runner calls: ``google.adk.runners``'s until 1.33."""
    import google.adk.apps.compaction as compaction
    import google.adk.runners as runners

    name = "_run_compaction_for_sliding_window"
    return getattr(runners, name, None) or getattr(compaction, name)


async def _two_turns_without_compaction(database: Any, session_id: str) -> Any:
    chat = await Conversation(database, session_id=session_id).start()
    plain = chat.app.model_copy(update={"events_compaction_config": None})
    chat.runner = Runner(app=plain, session_service=chat.service)
    await chat.turn()
    await chat.turn()
    return chat


async def _stored(chat: Conversation) -> Any:
    return await chat.service.get_session(
        app_name=APP_NAME, user_id=USER_ID, session_id=chat.session_id
    )


def _summaries(events: Any) -> int:
    return sum(
        1 for e in events if e.actions is not None and e.actions.compaction is not None
    )


async def _direct_compaction(database: Any, session_id: str) -> Tuple[int, ...]:
    """(summarizer calls, summaries yielded, stored, in the Session passed in)."""
    chat = await _two_turns_without_compaction(database, session_id)
    session = await _stored(chat)
    result = _compaction_function()(chat.app, session, chat.service)
    if inspect.isasyncgen(result):  # 2.5+: the caller appends what it yields
        yielded = [event async for event in result]
    else:
        await result
        yielded = []
    stored = await _stored(chat)
    return (
        chat.control.calls,
        len(yielded),
        _summaries(stored.events),
        _summaries(session.events),
    )


async def _with_package_then_released(
    stage: Callable[[Any, str], Awaitable[Any]], database: Any, monkeypatch: Any
) -> Tuple[Any, Any]:
    """What ``stage`` gives with the package's wrappers, then with them off
    (``_patching._active``: google-adk's originals run)."""
    with_package = await stage(database, "with-package")
    monkeypatch.setattr(_patching, "_active", False)
    return with_package, await stage(database, "released")


@pytest.mark.asyncio
async def test_a_direct_compaction_call_yields_and_writes_what_upstreams_does(
    database, monkeypatch
):
    with_package, released = await _with_package_then_released(
        _direct_compaction, database, monkeypatch
    )

    assert with_package == released
    assert with_package[0] == 1  # the summarizer did run


async def _append_through_an_outdated_session(database: Any, session_id: str) -> str:
    """Append through a ``Session`` read before a summary was stored directly."""
    chat = await _two_turns_without_compaction(database, session_id)
    outdated = await _stored(chat)
    current = await _stored(chat)
    first, last = current.events[0], current.events[-1]
    summary = Event(
        author="user",
        actions=EventActions(
            compaction=EventCompaction(
                start_timestamp=first.timestamp,
                end_timestamp=last.timestamp,
                compacted_content=types.Content(
                    role="model", parts=[types.Part(text="a summary")]
                ),
            )
        ),
    )
    await chat.service.append_event(session=current, event=summary)
    message = Event(
        author="user",
        invocation_id="direct",
        content=types.Content(role="user", parts=[types.Part(text="direct")]),
    )
    try:
        await chat.service.append_event(session=outdated, event=message)
    except Exception as error:  # upstream's stale-session error, where it has one
        return f"raised {type(error).__name__}"
    return f"stored, {len((await _stored(chat)).events)} events"


@pytest.mark.asyncio
async def test_a_direct_append_through_an_outdated_session_is_upstreams(
    database, monkeypatch
):
    with_package, released = await _with_package_then_released(
        _append_through_an_outdated_session, database, monkeypatch
    )

    assert with_package == released
