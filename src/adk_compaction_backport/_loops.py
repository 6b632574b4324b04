"""Futures across event loops.

Sync ``Runner.run`` gives every turn an event loop of its own, so a
compaction may wait for one that runs on another loop, which may close under
it; and a stream held on one loop is let go by a turn on another.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
from typing import NamedTuple, Optional


def running_loop() -> Optional[asyncio.AbstractEventLoop]:
    """The running event loop, or None outside one."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class Finished(NamedTuple):
    """Resolved when a compaction has finished (thread-safe), and its loop."""

    future: concurrent.futures.Future
    loop: asyncio.AbstractEventLoop


async def wait_unless_closed(finished: Finished) -> None:
    """Wait for a compaction, unless its event loop was closed under it."""
    waiting = asyncio.wrap_future(finished.future)
    while not waiting.done():
        await asyncio.wait([waiting], timeout=1.0)
        if finished.loop.is_closed() and not waiting.done():
            waiting.cancel()  # a loop closed without cancelling its tasks
            return


def resolve_soon(future: asyncio.Future) -> None:
    """Resolve ``future`` on its own event loop (turns may run on others)."""

    def resolve() -> None:
        if not future.done():
            future.set_result(None)

    # A closed loop raises RuntimeError: nobody waits for that stream any more.
    with contextlib.suppress(RuntimeError):
        future.get_loop().call_soon_threadsafe(resolve)
