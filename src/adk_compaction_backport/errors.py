"""Exceptions raised by ``apply(strict=True)``."""

from __future__ import annotations


class NotApplicable(RuntimeError):
    """The fix cannot be applied to the google-adk in this environment."""


class UnsupportedRelease(NotApplicable):
    """The installed google-adk is not a release this package claims."""


class FingerprintMismatch(NotApplicable):
    """A function we would wrap is not the code we checked."""


class AlreadyPatched(NotApplicable):
    """Another copy of this package has already patched google-adk."""
