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
from typing import Any, AsyncGenerator, Callable

from adk_compaction_backport._compat import aclosing
from adk_compaction_backport._coordinator import COORDINATOR
from adk_compaction_backport._loops import running_loop
from adk_compaction_backport._patching import is_active
from adk_compaction_backport.families._common import COMPACTION_FN, compacts


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
        if not is_active() or not COORDINATOR.in_a_turn(session_service, session):
            return original(app, session, session_service)
        COORDINATOR.submit(app, session, session_service, original)
        return _nothing_left_to_do()

    return _run_compaction_for_sliding_window


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
            wanted = is_active() and compacts(self) and not is_live_call
            if wanted and not _loop_is_closing():
                COORDINATOR.submit(
                    self.app, session, self.session_service, _upstream_compaction()
                )
            raise

    return _exec_with_plugin
