"""google-adk 1.24.0 - 1.27.x: a stale write reloads the session and goes on.

No stale error reaches anyone, but a summary computed on a session read before
the previous summary landed covers the wrong invocations, or the same ones
twice. Single flight and the shared session fix that, and every summary write
checks storage first, so one that another process stored is not repeated. The
model's context of 1.24 drops a late summary's neighbours (upstream places
them from 1.25).
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
    CONTENTS,
    DATABASE,
    RUNNERS,
    SQLITE,
    drain_before_returning,
    is_stale_error,
    register_fresh_session,
    summaries_in_place,
    track_turn,
)

__all__ = ["is_stale_error", "patches"]


def patches() -> List[Patch]:
    return [
        Patch(Target(RUNNERS, COMPACTION_FN), compact_through_coordinator),
        Patch(Target(COMPACTION, COMPACTION_FN), compact_through_coordinator),
        Patch(Target(RUNNERS, "Runner.run_async"), track_turn),
        Patch(Target(RUNNERS, "Runner.run"), drain_before_returning),
        Patch(
            Target(RUNNERS, "Runner._new_invocation_context"), register_fresh_session
        ),
        Patch(
            Target(CONTENTS, "_process_compaction_events"),
            summaries_in_place,
            variant="drops-late-summaries",
        ),
        # Relied on, not wrapped: it reloads a stale session instead of failing.
        Patch(
            Target(DATABASE, "DatabaseSessionService.append_event"), needs_extra=True
        ),
        # ``SqliteSessionService`` (what ``adk web`` uses by default) checks
        # ``update_time``, which every append moves: the same catch-up.
        Patch(
            Target(SQLITE, "SqliteSessionService.append_event"),
            catch_up_on_summaries,
            needs_extra=True,
        ),
    ]
