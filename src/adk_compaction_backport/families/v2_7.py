"""google-adk 2.7.0 - 2.13.x: post-invocation compaction discards stale summaries.

``Runner._run_post_invocation_compaction`` appends the summaries upstream's
generator yields and throws one away on ``StaleSessionError``; a next turn
that read the session before a summary landed fails with that error. Our
compaction wrapper stores the summary itself and yields none, so nothing is
left for that function to discard.
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
        # Relied on, not wrapped: it appends what our wrapper yields (nothing).
        Patch(Target(RUNNERS, "Runner._run_post_invocation_compaction")),
        # ``SqliteSessionService`` (what ``adk web`` uses by default) checks
        # ``update_time``, which every append moves: the same catch-up.
        Patch(
            Target(SQLITE, "SqliteSessionService.append_event"),
            catch_up_on_summaries,
            needs_extra=True,
        ),
    ]
