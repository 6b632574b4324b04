"""google-adk 1.19.0 - 1.23.x: compaction awaited at the end of the stream.

The stale check compares ``update_time``, which every append moves from 1.20;
an eager client's next turn overlaps the summarizer call. The model's context
drops a late summary's neighbours (until 1.25), and 1.19-1.21 rebuild stored
actions as a ``dict`` (google/adk-python#3487).
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
    typed_actions,
)

__all__ = ["is_stale_error", "patches"]


def patches() -> List[Patch]:
    return [
        # ``google.adk.runners`` imports the function by name (until 1.33).
        Patch(Target(RUNNERS, COMPACTION_FN), compact_through_coordinator),
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
        Patch(Target(CONTENTS, "_process_compaction_events"), summaries_in_place),
        Patch(
            Target(DATABASE, "StorageEvent.to_event"),
            typed_actions,
            variant="dict-actions",
            optional=True,
            needs_extra=True,  # moved to ``sessions.schemas`` (and fixed) in 1.22
        ),
        # ``SqliteSessionService`` (what ``adk web`` uses by default) checks
        # ``update_time``, which every append moves: the same catch-up.
        Patch(
            Target(SQLITE, "SqliteSessionService.append_event"),
            catch_up_on_summaries,
            needs_extra=True,
        ),
    ]
