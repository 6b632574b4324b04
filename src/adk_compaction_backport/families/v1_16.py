"""google-adk 1.16.0 - 1.18.x: compaction runs in a background task upstream drops.

``Runner.run_async`` ends with ``asyncio.create_task(_run_compaction_for_sliding_window(
app, session, session_service))``, using the name it imported into
``google.adk.runners``. We replace that name with a function that hands the
compaction to the coordinator, and wrap the runner so the coordinator knows each
turn's fresh session, sees early-closed streams, and lets sync ``Runner.run``
wait for the summary before its event loop closes. The model's context places
a late summary right after the events it covers, and on 1.18 stored actions
are rebuilt as typed models (google/adk-python#3487).
"""

from __future__ import annotations

import functools
from typing import Any, AsyncGenerator, Callable, Generator, List

from adk_compaction_backport._compaction_events import summaries_after_their_range
from adk_compaction_backport._compat import aclosing
from adk_compaction_backport._coordinator import COORDINATOR, running_loop
from adk_compaction_backport._patching import Patch, Target, is_active

RUNNERS = "google.adk.runners"
COMPACTION = "google.adk.apps.compaction"
DATABASE = "google.adk.sessions.database_session_service"
CONTENTS = "google.adk.flows.llm_flows.contents"
COMPACTION_FN = "_run_compaction_for_sliding_window"


def is_stale_error(error: BaseException) -> bool:
    """1.x reports a write from an out-of-date ``Session`` as this ValueError."""
    return isinstance(error, ValueError) and "stale session" in str(error)


def _upstream_compaction() -> Callable[..., Any]:
    import google.adk.apps.compaction as compaction

    return getattr(compaction, COMPACTION_FN)


async def _nothing_left_to_do() -> None:
    """What upstream's own ``create_task`` runs: the coordinator has the work."""


def submit_to_coordinator(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def _run_compaction_for_sliding_window(
        app: Any, session: Any, session_service: Any
    ):
        if not is_active():
            return original(app, session, session_service)
        COORDINATOR.submit(app, session, session_service, original)
        return _nothing_left_to_do()

    return _run_compaction_for_sliding_window


def track_turn(original: Callable[..., Any]) -> Callable[..., Any]:
    """Keep the session's bookkeeping alive while one of its turns runs."""

    @functools.wraps(original)
    async def run_async(
        self: Any, *args: Any, **kwargs: Any
    ) -> AsyncGenerator[Any, None]:
        key = None
        if is_active():
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


def _loop_is_closing() -> bool:
    loop = running_loop()
    if loop is None:
        return True
    # Set by ``loop.shutdown_asyncgens()``: a task created now would be
    # destroyed pending when ``asyncio.run`` closes the loop.
    return bool(getattr(loop, "_asyncgens_shutdown_called", False))


def compact_when_closed_early(original: Callable[..., Any]) -> Callable[..., Any]:
    """A consumer that stops reading early still gets its turn compacted."""

    @functools.wraps(original)
    async def _exec_with_plugin(
        self: Any,
        invocation_context: Any,
        session: Any,
        execute_fn: Any,
        is_live_call: bool = False,
    ) -> AsyncGenerator[Any, None]:
        events = original(
            self,
            invocation_context=invocation_context,
            session=session,
            execute_fn=execute_fn,
            is_live_call=is_live_call,
        )
        try:
            async with aclosing(events):
                async for event in events:
                    yield event
        except GeneratorExit:
            app = getattr(self, "app", None)
            wanted = app is not None and app.events_compaction_config
            if is_active() and wanted and not is_live_call and not _loop_is_closing():
                COORDINATOR.submit(
                    app, session, self.session_service, _upstream_compaction()
                )
            raise

    return _exec_with_plugin


class _DrainingRunner:
    """What upstream's sync ``Runner.run`` sees as ``self``.

    Its ``run_async`` also waits for the session's compaction, so the summary is
    stored before ``asyncio.run`` in upstream's worker thread closes the loop.
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
    @functools.wraps(original)
    def run(self: Any, *args: Any, **kwargs: Any) -> Generator[Any, None, None]:
        runner = _DrainingRunner(self) if is_active() else self
        yield from original(runner, *args, **kwargs)

    return run


def summaries_in_place(original: Callable[..., Any]) -> Callable[..., Any]:
    """Build the model's context as if each summary sat right after its range.

    Upstream drops every event stored before a summary and not older than its
    start: the next turn's events, when the summary landed late.
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


def patches() -> List[Patch]:
    return [
        Patch(Target(RUNNERS, COMPACTION_FN), submit_to_coordinator),
        Patch(Target(RUNNERS, "Runner.run_async"), track_turn),
        Patch(
            Target(RUNNERS, "Runner._new_invocation_context"), register_fresh_session
        ),
        Patch(Target(RUNNERS, "Runner._exec_with_plugin"), compact_when_closed_early),
        Patch(Target(RUNNERS, "Runner.run"), drain_before_returning),
        Patch(Target(CONTENTS, "_process_compaction_events"), summaries_in_place),
        # Relied on, not wrapped: they load the session before the first write
        # and run the compaction we hand to the coordinator.
        Patch(Target(RUNNERS, "Runner._setup_context_for_new_invocation")),
        Patch(Target(RUNNERS, "Runner._setup_context_for_resumed_invocation")),
        Patch(Target(COMPACTION, COMPACTION_FN)),
        Patch(Target(CONTENTS, "_get_contents")),
        Patch(Target(DATABASE, "DatabaseSessionService.append_event")),
        Patch(
            Target(DATABASE, "StorageEvent.to_event"),
            typed_actions,
            variant="dict-actions",
        ),
    ]
