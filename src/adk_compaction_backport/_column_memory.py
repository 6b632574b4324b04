"""Each session's last pass over its events, kept for its next turn.

A compaction's window is cut on the events its turn ended with
(``_windows.SeenWindow``): a pass over the whole session. The session's next
turn reads the same stored events again, as new objects, plus a few new ones.
Kept here by session, the last pass's columns let the next pass read only
two columns in C (to find where the events stop being the same) and what is
new: the package's cost per turn no longer grows with the session's length
(issue #22). No event is held, only columns (ids, timestamps, invocations,
compactions) and the summaries' widened copies, and at most ``KEPT_EVENTS``
events' worth of them, the sessions used longest ago forgotten first.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, Hashable, Sequence

from adk_compaction_backport._windows import Remembered, SeenWindow

KEPT_EVENTS = 50_000
"""Events whose columns are kept, all sessions together: 12 sessions of 4,000
events, 50 of 1,000. About 650 bytes an event on a session with a summary
every 2 invocations (measured with tracemalloc, the events let go), most of
it the summaries' copies and their compactions: some 33 MB at most."""


class ColumnMemory:
    """The last pass over each session's events (thread-safe: sync
    ``Runner.run`` gives each turn its own event loop and thread)."""

    def __init__(self, kept_events: int = KEPT_EVENTS) -> None:
        self._kept_events = kept_events
        self._lock = threading.Lock()
        self._passes: OrderedDict[Hashable, Remembered] = OrderedDict()
        self._events = 0

    def seen_window(self, key: Hashable, seen: Sequence[Any]) -> SeenWindow:
        """``SeenWindow(seen)``, building on the session's last pass."""
        with self._lock:
            earlier = self._passes.get(key)
        window = SeenWindow(seen, earlier)
        self._keep(key, window.remembered)
        return window

    def forget(self) -> None:
        """Forget every session's pass (``revert()``, tests)."""
        with self._lock:
            self._passes.clear()
            self._events = 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._passes)

    def _keep(self, key: Hashable, remembered: Any) -> None:
        with self._lock:
            old = self._passes.pop(key, None)
            if old is not None:
                self._events -= len(old.columns.ids)
            if remembered is None:  # a rewind among them: nothing to build on
                return
            self._passes[key] = remembered
            self._events += len(remembered.columns.ids)
            while self._events > self._kept_events and len(self._passes) > 1:
                _, dropped = self._passes.popitem(last=False)
                self._events -= len(dropped.columns.ids)


COLUMN_MEMORY = ColumnMemory()
