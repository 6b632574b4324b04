"""google-adk 1.28.0 - 2.6.x (not 2.0/2.1): a revision marker detects stale writes.

An eager client's next turn that read the session before the summary landed
fails, or the summary write fails at the end of the previous stream. Upstream
places late summaries in the model's context itself (since 1.25).
"""

from __future__ import annotations

from typing import List

from adk_compaction_backport._patching import Patch, Target
from adk_compaction_backport.families._awaited import (
    catch_up_on_summaries,
    compact_through_coordinator,
)
from adk_compaction_backport.families._common import (
    COMPACTION,
    COMPACTION_FN,
    DATABASE,
    RUNNERS,
    SQLITE,
    drain_before_returning,
    is_stale_error,
    register_fresh_session,
    track_turn,
)

__all__ = ["is_stale_error", "patches"]


def patches() -> List[Patch]:
    return [
        # ``google.adk.runners`` imports the function by name until 1.33.
        Patch(
            Target(RUNNERS, COMPACTION_FN), compact_through_coordinator, optional=True
        ),
        Patch(Target(COMPACTION, COMPACTION_FN), compact_through_coordinator),
        Patch(Target(RUNNERS, "Runner.run_async"), track_turn),
        Patch(Target(RUNNERS, "Runner.run"), drain_before_returning),
        Patch(
            Target(RUNNERS, "Runner._new_invocation_context"), register_fresh_session
        ),
        Patch(
            Target(DATABASE, "DatabaseSessionService.append_event"),
            catch_up_on_summaries,
            needs_extra=True,
        ),
        # ``SqliteSessionService`` (what ``adk web`` uses by default) checks
        # ``update_time``, which every append moves: the same catch-up.
        Patch(
            Target(SQLITE, "SqliteSessionService.append_event"),
            catch_up_on_summaries,
            needs_extra=True,
        ),
    ]
