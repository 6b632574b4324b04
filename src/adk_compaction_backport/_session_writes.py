"""This process's writes to one session: through which ``Session``, one at a
time, and the summary it stored last.

The *current reference* is the ``Session`` object the newest turn loaded
fresh from storage. A summary is written through it (``_summary_writes``), so
neither the summary nor that turn's next write is behind storage. Releases
before 1.25 have no lock of their own, and interleaved appends through one
``Session`` leave it looking stale: the writes through it (a turn's and a
summary's) take turns on its event loop. The summary this process stored
last joins the next compaction's window (``_windows``).
"""

from __future__ import annotations

import asyncio
from typing import Any, AsyncContextManager, Optional

from adk_compaction_backport._compat import ASYNC_NULL_CONTEXT
from adk_compaction_backport._loops import running_loop
from adk_compaction_backport._windows import OwnSummary


class SessionWrites:
    """The current reference of one session, its loop and its write lock,
    and the summary this process stored last (``_windows.OwnSummary``)."""

    __slots__ = ("current", "lock", "loop", "own_summary")

    def __init__(self) -> None:
        self.current: Any = None
        self.loop: Optional[asyncio.AbstractEventLoop] = None
        self.lock: Optional[asyncio.Lock] = None
        self.own_summary: Optional[OwnSummary] = None

    def loaded(self, session: Any) -> None:
        """A turn loaded ``session`` fresh from storage: it is now the current one."""
        loop = running_loop()
        if self.loop is not loop:
            self.lock = asyncio.Lock() if loop is not None else None
        self.current = session
        self.loop = loop

    def current_here(self) -> Any:
        """The current reference, if it belongs to the running event loop."""
        return self.current if self.loop is running_loop() else None

    def writing_through(self, session: Any) -> AsyncContextManager[Any]:
        """A lock to hold while writing through ``session``, if others share it."""
        if (
            self.current is not session
            or self.lock is None
            or self.loop is not running_loop()
        ):
            return ASYNC_NULL_CONTEXT
        return self.lock
