"""Wrappers every release family shares: turn tracking, the model's context
and a rewind's write, fenced against summary writes.

Each takes upstream's function and returns a wrapper that calls it; none holds
upstream code. The families table (``_guards``) names the ones each
family's releases need.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any, AsyncGenerator, AsyncIterator, Callable, Generator, List

from adk_compaction_backport._compaction_events import summaries_after_their_range
from adk_compaction_backport._compat import aclosing
from adk_compaction_backport._coordinator import COORDINATOR
from adk_compaction_backport._patching import is_active
from adk_compaction_backport._rewind_fence import fenced, stamped_after
from adk_compaction_backport._rewinds import rewound_before
from adk_compaction_backport._session_identity import SessionIdentity

COMPACTION_FN = "_run_compaction_for_sliding_window"

# How releases word a write from an out-of-date ``Session``: 1.x before 1.28,
# then 1.28 onward (from 2.7 as ``google.adk.errors.StaleSessionError``, a
# ValueError subclass with the same message).
STALE_SESSION_MESSAGES = (
    "stale session",
    "has been modified in storage since it was loaded",
)


def is_stale_error(error: BaseException) -> bool:
    """Whether ``error`` is upstream's rejection of a stale ``Session`` write."""
    return isinstance(error, ValueError) and any(
        message in str(error) for message in STALE_SESSION_MESSAGES
    )


def compacts(runner: Any) -> bool:
    """Whether the runner's app compacts its sessions at all."""
    app = getattr(runner, "app", None)
    return app is not None and bool(app.events_compaction_config)


def track_turn(original: Callable[..., Any]) -> Callable[..., Any]:
    """Keep the session's bookkeeping alive while one of its turns runs.

    Still an async generator function, as upstream's is (callers may check);
    an app without compaction gets no bookkeeping.
    """

    @functools.wraps(original)
    async def run_async(
        self: Any, *args: Any, **kwargs: Any
    ) -> AsyncGenerator[Any, None]:
        key = None
        if is_active() and compacts(self):
            key = COORDINATOR.turn_started(
                self.session_service,
                self.app_name,
                kwargs.get("user_id"),
                kwargs.get("session_id"),
            )
        try:
            async with aclosing(original(self, *args, **kwargs)) as events:
                async for event in events:
                    yield event
        finally:
            if key is not None:
                COORDINATOR.turn_ended(key)

    return run_async


def register_fresh_session(original: Callable[..., Any]) -> Callable[..., Any]:
    """Every invocation context starts from a session just read from storage."""

    @functools.wraps(original)
    def _new_invocation_context(
        self: Any, session: Any, *args: Any, **kwargs: Any
    ) -> Any:
        if is_active():
            COORDINATOR.session_loaded(self.session_service, session)
        return original(self, session, *args, **kwargs)

    return _new_invocation_context


def summaries_in_place(original: Callable[..., Any]) -> Callable[..., Any]:
    """Build the model's context as if each summary sat right after its range.

    Upstream (before 1.25) drops every event stored before a summary and not
    older than its start: the next turn's events, when the summary landed late.
    """

    @functools.wraps(original)
    def _process_compaction_events(events: List[Any]) -> List[Any]:
        if not is_active():
            return original(events)
        return original(summaries_after_their_range(events))

    return _process_compaction_events


def typed_actions(original: Callable[..., Any]) -> Callable[..., Any]:
    """Rebuild stored actions as models, as upstream does from 1.22 (#3487)."""

    @functools.wraps(original)
    def to_event(self: Any) -> Any:
        event = original(self)
        if is_active() and self.actions is not None:
            from google.adk.events.event_actions import EventActions

            event.actions = EventActions.model_validate(self.actions.model_dump())
        return event

    return to_event


class _DrainingRunner:
    """What upstream's sync ``Runner.run`` sees as ``self``.

    Its ``run_async`` also waits for the session's compactions, so each summary
    is stored before ``asyncio.run`` in upstream's worker thread closes the
    loop (from 1.19 a compaction queued behind another does not hold the
    stream, and would be cancelled there).
    """

    def __init__(self, runner: Any) -> None:
        self._runner = runner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._runner, name)

    async def run_async(self, **kwargs: Any) -> AsyncGenerator[Any, None]:
        runner = self._runner
        async with aclosing(runner.run_async(**kwargs)) as events:
            async for event in events:
                yield event
        await COORDINATOR.wait_for_session(
            runner.session_service,
            runner.app_name,
            kwargs["user_id"],
            kwargs["session_id"],
        )


def drain_before_returning(original: Callable[..., Any]) -> Callable[..., Any]:
    """Sync ``Runner.run`` returns once its session's summaries are stored."""

    @functools.wraps(original)
    def run(self: Any, *args: Any, **kwargs: Any) -> Generator[Any, None, None]:
        runner = _DrainingRunner(self) if is_active() else self
        yield from original(runner, *args, **kwargs)

    return run


@contextlib.asynccontextmanager
async def rewind_fenced(service: Any, session: Any, event: Any) -> AsyncIterator[None]:
    """Hold the session's rewind fence; stamp the rewind after any summary
    stored since its read (``_rewind_fence``)."""
    identity = SessionIdentity.of(service, session)
    async with fenced(identity):
        stored = await identity.read(session.events)
        if stored is not None:
            stamped_after(event, session.events, stored.events)
        yield


def fence_rewinds(original: Callable[..., Any]) -> Callable[..., Any]:
    """A rewind never interleaves with a summary's check and write, and sorts
    after the summaries stored since its read, where nothing else of the
    service's writes needs the package: 1.17 - 1.18 (a summary does not move
    ``update_time``, so a rewind is never stale because of one) and 1.24 -
    1.27 (the service reloads a stale session and writes anyway). Other writes
    are upstream's."""

    @functools.wraps(original)
    async def append_event(self: Any, session: Any, event: Any) -> Any:
        if (
            not is_active()
            or rewound_before(event) is None
            or COORDINATOR.storing_a_summary()
        ):
            return await original(self, session=session, event=event)
        async with rewind_fenced(self, session, event):
            return await original(self, session=session, event=event)

    return append_event
