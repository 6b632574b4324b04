"""Small shims so the package runs on Python 3.9 (google-adk 1.16-1.18 support it)."""

from __future__ import annotations

from typing import Any, AsyncIterator

try:  # Python 3.10+
    from contextlib import aclosing
except ImportError:  # pragma: no cover - Python 3.9
    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def aclosing(thing: Any) -> AsyncIterator[Any]:  # type: ignore[no-redef]
        try:
            yield thing
        finally:
            await thing.aclose()


class _AsyncNullContext:
    """``contextlib.nullcontext()`` as an async context manager (3.10+ has it)."""

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc_info: Any) -> None:
        return None


ASYNC_NULL_CONTEXT = _AsyncNullContext()

__all__ = ["ASYNC_NULL_CONTEXT", "aclosing"]
