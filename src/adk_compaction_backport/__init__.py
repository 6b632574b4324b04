"""Backport of the google-adk event-compaction race fix (google/adk-python#5194).

Installing the package is enough: a one-line ``.pth`` hook applies the fix when
``google.adk.runners`` is first imported. Set ``ADK_COMPACTION_BACKPORT_DISABLE=1``
to turn that off and call :func:`apply` yourself.

This module stays tiny on purpose: the start-up hook imports it in every
interpreter, so the real work is imported only when a function is called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from adk_compaction_backport._status import Status

__all__ = ["Status", "apply", "drain", "revert", "status"]
__version__ = "0.1.0"


def apply(strict: bool = False) -> Status:
    """Patch the installed google-adk if it is a release we claim.

    With ``strict=True`` a release or code we do not recognise raises
    :class:`~adk_compaction_backport.errors.NotApplicable`; otherwise google-adk
    is left untouched and :func:`status` says why. Applying twice is a no-op.
    """
    from adk_compaction_backport import _activation

    return _activation.ACTIVATION.apply(strict=strict)


def revert() -> Status:
    """Restore google-adk's original functions where they are still ours."""
    from adk_compaction_backport import _activation

    return _activation.ACTIVATION.revert()


def status() -> Status:
    """Say which google-adk is installed and whether (and how) it is patched."""
    from adk_compaction_backport import _activation

    return _activation.ACTIVATION.status()


async def drain(timeout: Optional[float] = None) -> int:
    """Wait for compactions still running on this event loop; return how many.

    Call it before an async application exits right after a turn, so the
    summary of that turn is stored before the loop closes.
    """
    from adk_compaction_backport._coordinator import COORDINATOR

    return await COORDINATOR.drain(timeout=timeout)


def __getattr__(name: str) -> object:
    if name == "Status":
        from adk_compaction_backport._status import Status

        return Status
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
