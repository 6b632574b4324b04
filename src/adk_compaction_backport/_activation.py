"""apply / revert / status: decide whether the fix applies, then install it whole.

Nothing is installed unless every check passes (release, fingerprints, not
already patched); an install that fails half-way is rolled back.
"""

from __future__ import annotations

import importlib
import logging
import sys
import threading
from importlib import metadata
from typing import List, Optional, Tuple

from adk_compaction_backport import _bootstrap, _guards, _patching
from adk_compaction_backport._coordinator import COORDINATOR
from adk_compaction_backport._status import Status
from adk_compaction_backport.errors import (
    AlreadyPatched,
    FingerprintMismatch,
    NotApplicable,
    UnsupportedRelease,
)

logger = logging.getLogger("adk_compaction_backport")

_lock = threading.RLock()
_installed: List[_patching.Installed] = []
_family: Optional[str] = None
_reason: Optional[str] = None
_warned = False


def installed_adk_version() -> Optional[str]:
    try:
        return metadata.version("google-adk")
    except metadata.PackageNotFoundError:
        return None


def _plan(version: Optional[str]) -> Tuple[_guards.FamilyGuard, List[_patching.Patch]]:
    """The patches to install, or NotApplicable saying why there are none."""
    if version is None:
        raise UnsupportedRelease("google-adk is not installed; nothing was patched")
    family = _guards.family_for(version)
    if family is None:
        raise UnsupportedRelease(
            f"google-adk {version} is not a release this package claims "
            f"({_guards.claimed_releases()}); nothing was patched. "
            + _guards.NOT_CLAIMED
        )
    adapter = importlib.import_module(family.adapter)
    chosen: List[_patching.Patch] = []
    for patch in adapter.patches():
        name = patch.target.qualname
        try:
            current = patch.target.current()
        except ImportError as error:
            if patch.needs_extra:
                continue  # e.g. no SQLAlchemy: DatabaseSessionService can't run
            raise FingerprintMismatch(
                f"{name} could not be imported from google-adk {version} "
                f"({error!r}); nothing was patched"
            ) from error
        except (AttributeError, KeyError) as error:
            if patch.optional:
                continue
            raise FingerprintMismatch(
                f"{name} was not found in google-adk {version} ({error!r}); "
                "nothing was patched"
            ) from error
        if _patching.is_ours(current):
            raise AlreadyPatched(
                f"{name} is already wrapped by adk_compaction_backport (another "
                "copy of the package, or an earlier apply under another name); "
                "nothing more was patched"
            )
        variant = family.fingerprints.get(name, {}).get(
            _patching.fingerprint(current) or ""
        )
        if variant is None:
            raise FingerprintMismatch(
                f"the code of {name} in google-adk {version} is not the code this "
                "package was checked against (fingerprint mismatch: a modified or "
                "unreleased build?); nothing was patched"
            )
        if patch.make_wrapper is not None and patch.variant in (None, variant):
            chosen.append(patch)
    return family, chosen


def apply(strict: bool = False) -> Status:
    global _family, _reason
    with _lock:
        if _installed:
            return status()
        version = installed_adk_version()
        try:
            family, chosen = _plan(version)
            done: List[_patching.Installed] = []
            try:
                for patch in chosen:
                    done.append(_patching.install(patch.target, patch.make_wrapper))
            except Exception as error:
                for item in reversed(done):
                    _patching.remove(item)
                raise NotApplicable(
                    f"patching google-adk {version} failed and was rolled back: "
                    f"{error!r}"
                ) from error
        except NotApplicable as error:
            _reason = str(error)
            if strict:
                raise
            return status()
        adapter = importlib.import_module(family.adapter)
        COORDINATOR.configure(adapter.is_stale_error)
        _installed.extend(done)
        _family, _reason = family.name, None
        _patching.set_active(True)
        return status()


def apply_automatically() -> None:
    """The start-up hook's entry: apply quietly, explain once in the log."""
    global _warned
    if _bootstrap.opted_out():
        return
    result = apply(strict=False)
    if result.applied or _warned:
        return
    _warned = True
    claimed = _guards.family_for(result.adk_version) is not None
    log = logger.warning if claimed else logger.debug
    log("adk-compaction-backport left google-adk untouched: %s", result.reason)


def revert() -> Status:
    global _family, _reason
    with _lock:
        buried = [
            i.target.qualname for i in reversed(_installed) if not _patching.remove(i)
        ]
        _patching.set_active(False)
        was_applied = bool(_installed)
        _installed.clear()
        _family = None
        if not was_applied:
            return status()
        _reason = "reverted by adk_compaction_backport.revert()"
        if buried:
            _reason += (
                "; these stay wrapped beneath another library's wrapper but pass "
                "through untouched: " + ", ".join(buried)
            )
        return status()


def _reason_not_applied() -> str:
    if _reason is not None:
        return _reason
    if _bootstrap.opted_out():
        return (
            f"the automatic patch is off ({_bootstrap.OPT_OUT_VARIABLE} is set); "
            "call adk_compaction_backport.apply() to patch explicitly"
        )
    if _bootstrap.TRIGGER_MODULE not in sys.modules:
        return (
            "google-adk is not imported yet; the fix is applied when "
            "google.adk.runners is"
        )
    return (
        "google.adk.runners was imported but the start-up hook did not run (python -S, "
        "or the package was not installed from its wheel?); call "
        "adk_compaction_backport.apply()"
    )


def status() -> Status:
    with _lock:
        version = installed_adk_version()
        family = _guards.family_for(version)
        if _installed:
            return Status(
                adk_version=version,
                family=_family,
                applied=True,
                reason="applied",
                patched=tuple(i.target.qualname for i in _installed),
            )
        return Status(
            adk_version=version,
            family=family.name if family else None,
            applied=False,
            reason=_reason_not_applied(),
        )
