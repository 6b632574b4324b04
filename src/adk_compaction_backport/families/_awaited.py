"""Wrappers for releases that await compaction at the end of the invocation.

From 1.19 the stream of ``Runner.run_async`` ends only after its compaction;
an eager client's next turn runs meanwhile. The compaction goes to the
coordinator (single flight, summary written through the newest turn's
``Session``), and a turn's write that a summary made stale catches up and is
retried. Upstream's compaction is a coroutine that appends the summary itself
until 2.4, and an async generator whose caller appends from 2.5: one wrapper
serves both shapes.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, AsyncGenerator, Callable

from adk_compaction_backport._catch_up import (
    caught_up_with_summaries,
    put_in_storage_order,
)
from adk_compaction_backport._compat import aclosing
from adk_compaction_backport._coordinator import COORDINATOR, CompactFn
from adk_compaction_backport._lock_contention import retried_on_lock_contention
from adk_compaction_backport._patching import is_active
from adk_compaction_backport._rewind_fence import stamped_after
from adk_compaction_backport._rewinds import rewound_before
from adk_compaction_backport.families._common import rewind_fenced
from adk_compaction_backport.families._token_threshold import compacted_at_request_time

CATCH_UP_ATTEMPTS = 8
"""Writes of a turn before a stale one stands. Each retry follows a catch-up
that found only newer summaries, so each is a summary stored meanwhile and the
count is bounded by the compactions under way; with the cross-process lock off
two processes' summaries (and this process's own, stored through a read when
the turn's ``Session`` was behind) landed three times in one write on a loaded
machine."""


def _writing_through(original: Callable[..., Any], options: Any) -> CompactFn:
    """Upstream's compaction as a coroutine that writes through ``writer``."""
    if not inspect.isasyncgenfunction(original):
        return functools.partial(original, **options)

    async def compact(app: Any, session: Any, writer: Any) -> None:
        async with aclosing(original(app, session, writer, **options)) as summaries:
            async for summary in summaries:
                await writer.append_event(session=session, event=summary)

    return compact


def _skip_token_check_if_done(session: Any, options: Any) -> None:
    """Skip the token check after the invocation when its turn's request-time
    compaction already summarized, as upstream does (1.26 - 2.7.x) except for
    a workflow node's, whose mark stays on a copy of the context (2.2 - 2.7.x)."""
    if options.get("skip_token_compaction") is False and compacted_at_request_time(
        session
    ):
        options["skip_token_compaction"] = True


def compact_through_coordinator(original: Callable[..., Any]) -> Callable[..., Any]:
    """Hand the end-of-invocation compaction to the coordinator.

    Only inside a Runner turn: a direct call runs upstream's function as it is.
    """
    if inspect.isasyncgenfunction(original):

        @functools.wraps(original)
        async def _run_compaction_for_sliding_window(
            app: Any, session: Any, session_service: Any, **options: Any
        ) -> AsyncGenerator[Any, None]:
            if not is_active() or not COORDINATOR.in_a_turn(session_service, session):
                async with aclosing(
                    original(app, session, session_service, **options)
                ) as summaries:
                    async for summary in summaries:
                        yield summary
                return
            # The coordinator stores the summary; the runner gets none to append.
            _skip_token_check_if_done(session, options)
            compact = _writing_through(original, options)
            await COORDINATOR.compact(app, session, session_service, compact)

        return _run_compaction_for_sliding_window

    @functools.wraps(original)
    async def _run_compaction_for_sliding_window_(
        app: Any, session: Any, session_service: Any, **options: Any
    ) -> None:
        if not is_active() or not COORDINATOR.in_a_turn(session_service, session):
            return await original(app, session, session_service, **options)
        _skip_token_check_if_done(session, options)
        compact = _writing_through(original, options)
        await COORDINATOR.compact(app, session, session_service, compact)
        return None

    return _run_compaction_for_sliding_window_


def _may_catch_up(service: Any, session: Any, event: Any) -> bool:
    """Whether a stale failure of this write may be one only summaries caused.

    A Runner turn's writes (from 1.26 a summary too: request-time compaction
    appends through the turn's ``Session`` before a model call), and a rewind
    (``Runner.rewind_async`` reads the session and appends its rewind event
    outside any turn, often right after a final reply, while that turn's
    summary is still being computed). The coordinator's own summary writes
    have their own checks; other direct calls are upstream's.
    """
    if COORDINATOR.storing_a_summary():
        return False
    if rewound_before(event) is not None:
        return True
    return COORDINATOR.in_a_turn(service, session)


async def _appended_catching_up(
    original: Callable[..., Any], service: Any, session: Any, event: Any
) -> Any:
    for attempt in range(1, CATCH_UP_ATTEMPTS + 1):
        try:
            async with COORDINATOR.writing_through(service, session):
                appended = await retried_on_lock_contention(
                    lambda: original(service, session=session, event=event), session
                )
            if attempt > 1:
                put_in_storage_order(session)
            return appended
        except Exception as error:
            if not COORDINATOR.is_stale(error) or attempt == CATCH_UP_ATTEMPTS:
                raise
            before = list(session.events)
            if not await caught_up_with_summaries(service, session):
                raise
            if rewound_before(event) is not None:
                stamped_after(event, before, session.events)
    raise AssertionError("unreachable")


def catch_up_on_summaries(original: Callable[..., Any]) -> Callable[..., Any]:
    """A Runner's write that only a summary made stale is retried, not failed;
    so is one SQLite refused for lock contention (``_lock_contention``)."""

    @functools.wraps(original)
    async def append_event(self: Any, session: Any, event: Any) -> Any:
        if not is_active() or not _may_catch_up(self, session, event):
            return await original(self, session=session, event=event)
        if rewound_before(event) is None:
            return await _appended_catching_up(original, self, session, event)
        async with rewind_fenced(self, session, event):
            return await _appended_catching_up(original, self, session, event)

    return append_event
