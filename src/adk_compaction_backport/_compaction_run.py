"""One run of upstream's compaction function, on the window it is given.

The summary writer (``_summary_writes``) stands in for the session service,
so the summary goes where the write policy allows. A run that outlives
``ADK_COMPACTION_BACKPORT_TIMEOUT`` (a hung summarizer) is abandoned; a
failure is logged, never raised: the turn itself is not affected.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any, Awaitable, Callable, List, Optional

from adk_compaction_backport._session_identity import SessionIdentity
from adk_compaction_backport._session_writes import SessionWrites
from adk_compaction_backport._summary_writes import Snapshot, SummaryWriter
from adk_compaction_backport._windows import Columns

logger = logging.getLogger("adk_compaction_backport")

CompactFn = Callable[[Any, Any, Any], Awaitable[Any]]
"""Upstream's ``_run_compaction_for_sliding_window(app, session, session_service)``."""

TIME_LIMIT_VARIABLE = "ADK_COMPACTION_BACKPORT_TIMEOUT"
DEFAULT_TIME_LIMIT = 300.0


def time_limit_from_environment() -> float:
    """Seconds a compaction may take before it is abandoned (a hung summarizer)."""
    try:
        return float(os.environ.get(TIME_LIMIT_VARIABLE, DEFAULT_TIME_LIMIT))
    except ValueError:
        return DEFAULT_TIME_LIMIT


async def run_compaction(
    compact: CompactFn,
    app: Any,
    session: Any,
    given: List[Any],
    identity: SessionIdentity,
    writes: SessionWrites,
    is_stale: Callable[[BaseException], bool],
    time_limit: float,
    columns: Optional[Columns] = None,
) -> None:
    """Run ``compact`` for the turn that ended with ``session`` on ``given``
    (``_windows.window_events``); ``columns``: of ``session``'s events, which
    ``given`` was cut from (``_windows.SeenWindow``)."""
    view = session.model_copy(update={"events": given})
    snapshot = Snapshot.of(session, given, columns)
    writer = SummaryWriter(identity, writes, snapshot, is_stale)
    try:
        await asyncio.wait_for(compact(app, view, writer), time_limit)
    except asyncio.TimeoutError:
        logger.warning(
            "compaction of session %s took longer than %s s and was abandoned; "
            "no summary was stored for it (%s sets the limit)",
            session.id,
            time_limit,
            TIME_LIMIT_VARIABLE,
        )
    except Exception:
        logger.warning(
            "compaction of session %s (app %s, user %s) failed; no summary was "
            "stored for it. The turn itself is not affected.",
            session.id,
            session.app_name,
            session.user_id,
            exc_info=True,
        )
