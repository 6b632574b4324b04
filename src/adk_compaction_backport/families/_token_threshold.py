"""Token-threshold compaction: no rewound events, no range summarized twice.

Request-time compaction (1.26+) runs upstream's token path inside the turn,
on the turn's whole ``Session`` (issue #24, docs/compaction-triggers.md):

* before 2.5 it does not leave out the events a ``Runner.rewind_async``
  removed, so its summary quoted an undone turn and brought it back into the
  prompt. The choice of events to summarize now sees only live events (2.5+
  apply rewinds themselves; there this changes nothing);
* it knows nothing of the package's own compaction of the previous turn: a
  turn that started while that summary was computed (an eager client), or
  read the session just before it landed, summarized the same events again.
  Now, when it is about to summarize and this process has a compaction of the
  session in flight (or stored a summary the turn has not seen), it waits for
  that one, takes it (only summaries landed: ``_catch_up``) and decides again
  on top of it. A turn under the threshold never waits.
  Across processes likewise: when it is about to summarize and the session's
  storage is shared with other processes (``_process_locks``), it takes the
  session's cross-process lock (bounded wait, as the sliding-window
  compaction), catches up with the summaries another process stored
  meanwhile (``_catch_up``), decides again on top of them, and holds the lock
  through its own summarizer call and write, so the two paths exclude each
  other across processes too. A failing lock backend is logged, and the turn
  goes on without it.

The after-invocation path gets the coordinator's view (no rewound events, the
summaries that landed) and is not affected.
"""

from __future__ import annotations

import contextvars
import functools
import weakref
from typing import Any, Callable, List, Optional

from adk_compaction_backport._catch_up import caught_up_with_summaries
from adk_compaction_backport._coordinator import COORDINATOR
from adk_compaction_backport._patching import is_active
from adk_compaction_backport._process_locks import session_lock
from adk_compaction_backport._rewinds import live_events
from adk_compaction_backport._session_identity import SessionIdentity


class _RequestTime:
    """A request-time compaction of a turn's ``Session``, being decided."""

    __slots__ = ("deferred", "final", "identity", "service", "session")

    def __init__(self, service: Any, session: Any) -> None:
        self.service = service
        self.session = session
        self.identity: Optional[SessionIdentity] = None  # once it would summarize
        self.deferred = False  # about to summarize: first wait, lock, catch up
        self.final = False  # decided again after it: no more waiting

    def defers(self) -> bool:
        """Whether to wait before summarizing: a summary of this process may
        be ahead, or another process may store one (a shared storage)."""
        if self.final:
            return False
        self.identity = SessionIdentity.of(self.service, self.session)
        if not (
            COORDINATOR.summary_ahead_of(self.service, self.session)
            or self.identity.locks is not None
        ):
            return False
        self.deferred = True
        return True


# Sessions whose turn stored a request-time summary. On 2.2 - 2.7.x a workflow
# node runs in a copy of the invocation context, so upstream's own mark of it
# (``token_compaction_checked``) never reaches the parent, and the check after
# the invocation summarized again: one summarizer call per turn, its summary
# then dropped (it covers node inputs that are never stored).
# (``Session`` is not hashable: by id, the entry going with the object.)
_COMPACTED: weakref.WeakValueDictionary[int, Any] = weakref.WeakValueDictionary()


def compacted_at_request_time(session: Any) -> bool:
    """Whether ``session``'s turn stored a request-time summary (asked once)."""
    if _COMPACTED.get(id(session)) is not session:
        return False
    del _COMPACTED[id(session)]
    return True


_DECIDING: contextvars.ContextVar[Optional[_RequestTime]] = contextvars.ContextVar(
    "adk_compaction_backport_request_time_compaction", default=None
)


def without_rewound_events(original: Callable[..., Any]) -> Callable[..., Any]:
    """Choose what to summarize from the events that still count; nothing yet
    when a summary of this session is in flight (request time only)."""

    @functools.wraps(original)
    def _events_to_compact_for_token_threshold(*args: Any, **kwargs: Any) -> List[Any]:
        if not is_active():
            return original(*args, **kwargs)
        if "events" in kwargs:
            kwargs["events"] = live_events(kwargs["events"])
        chosen = original(*args, **kwargs)
        deciding = _DECIDING.get()
        if chosen and deciding is not None and deciding.defers():
            return []
        return chosen

    return _events_to_compact_for_token_threshold


def after_the_summary_in_flight(original: Callable[..., Any]) -> Callable[..., Any]:
    """Request-time compaction waits for the package's compaction of the
    session in flight (this process's, then under the session's cross-process
    lock another's), when it would otherwise summarize the same events."""

    @functools.wraps(original)
    async def _run_compaction_for_token_threshold_config(
        *args: Any, **kwargs: Any
    ) -> Any:
        session = kwargs.get("session")
        service = kwargs.get("session_service")
        if (
            not is_active()
            or session is None
            or service is None
            or not COORDINATOR.in_a_turn(service, session)
        ):
            return await original(*args, **kwargs)
        deciding = _RequestTime(service, session)
        token = _DECIDING.set(deciding)
        try:
            compacted = await original(*args, **kwargs)
            if deciding.deferred:
                await COORDINATOR.wait_for_session(
                    service, session.app_name, session.user_id, session.id
                )
                async with session_lock(deciding.identity, COORDINATOR.time_limit):
                    await caught_up_with_summaries(service, session)
                    deciding.final = True
                    compacted = await original(*args, **kwargs)
        finally:
            _DECIDING.reset(token)
        if compacted:
            _COMPACTED[id(session)] = session
        return compacted

    return _run_compaction_for_token_threshold_config
