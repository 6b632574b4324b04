"""Small shims so the package runs on Python 3.9 (google-adk 1.16-1.18 support it)."""

from __future__ import annotations

import sys
from typing import Any, AsyncContextManager, AsyncIterator

try:  # Python 3.10+
    from contextlib import aclosing as _aclosing
except ImportError:  # pragma: no cover - Python 3.9
    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def _aclosing(thing: Any) -> AsyncIterator[Any]:  # type: ignore[no-redef]
        try:
            yield thing
        finally:
            await thing.aclose()


def aclosing(thing: Any) -> AsyncContextManager[Any]:
    """Close an async generator the way google-adk itself does.

    google-adk 1.16-1.18 have their own ``Aclosing`` class (later releases
    alias ``contextlib.aclosing``), and a test of theirs checks that every
    async generator is held by one (issue #12). Looked up when called, in
    ``sys.modules`` only: the package imports nothing on the app's behalf.
    """
    module = sys.modules.get("google.adk.utils.context_utils")
    closing = getattr(module, "Aclosing", None) or _aclosing
    return closing(thing)


class _AsyncNullContext:
    """``contextlib.nullcontext()`` as an async context manager (3.10+ has it)."""

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc_info: Any) -> None:
        return None


ASYNC_NULL_CONTEXT = _AsyncNullContext()

__all__ = ["ASYNC_NULL_CONTEXT", "aclosing"]
