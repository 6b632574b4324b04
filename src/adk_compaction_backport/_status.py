"""The answer of ``status()``: plain data, printable by ``doctor``."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Optional, Tuple


@dataclass(frozen=True)
class Status:
    """Whether the installed google-adk is patched, and why (not).

    ``applied``: the fix applies and every wrapper is either in place
    (``patched``) or waits for the app to import its module (``pending``).
    """

    adk_version: Optional[str]
    family: Optional[str]
    applied: bool
    reason: str
    patched: Tuple[str, ...] = field(default=())
    # Wrappers decided on, installed when the app imports their module.
    pending: Tuple[str, ...] = field(default=())

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
