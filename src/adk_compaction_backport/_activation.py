"""apply / revert / status: decide whether the fix applies, then install it whole.

The decision is taken once, from google-adk's source: every target of the
release family must carry the code we checked (``_source`` reads it through
the import system without importing anything). Only then are wrappers
installed, each when the module holding its target has been imported by the
app (right away if it already is; the start-up hook's watcher calls
:func:`module_loaded` for the others). An install that fails rolls back every
wrapper and cancels the pending ones: all or nothing.
"""

from __future__ import annotations

import importlib
import logging
import re
import sys
import threading
from importlib import metadata
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple

import _adk_compaction_backport_hook as _hook
from adk_compaction_backport import _bootstrap, _guards, _patching, _source
from adk_compaction_backport.errors import (
    AlreadyPatched,
    FingerprintMismatch,
    NotApplicable,
    UnsupportedRelease,
)

if TYPE_CHECKING:
    from adk_compaction_backport._status import Status

logger = logging.getLogger("adk_compaction_backport")
_VERSION = re.compile(r"""__version__\s*=\s*['"]([^'"]+)['"]""")

_lock = threading.RLock()
_installed: List[_patching.Installed] = []
_pending: List[_patching.Patch] = []  # wrappers whose module is not imported yet
_found: Dict[str, _source.Found] = {}  # where each wrapped target's code is
_family: Optional[str] = None
_reason: Optional[str] = None
_decided = False  # apply() or revert() ran: the start-up hook stays out of it
_warned = False


def installed_adk_version() -> Optional[str]:
    """google-adk's own ``__version__``, read without importing anything.

    ``importlib.metadata`` parses google-adk's whole METADATA file (milliseconds
    at import time); ``google/adk/version.py`` says the same in one line.
    """
    module = sys.modules.get("google.adk.version")
    version = getattr(module, "__version__", None)
    if isinstance(version, str):
        return version
    read = _source.SourceReader(skip=_hook.watcher()).source("google.adk.version")
    found = _VERSION.search(read[0]) if read is not None else None
    if found is not None:
        return found.group(1)
    try:
        return metadata.version("google-adk")
    except metadata.PackageNotFoundError:
        return None


def _extra_missing() -> bool:
    """Whether SQLAlchemy cannot be imported (without importing it)."""
    import importlib.util

    try:
        return importlib.util.find_spec("sqlalchemy") is None
    except (ImportError, ValueError):
        return True


def _check_loaded(patch: _patching.Patch, found: _source.Found, version: str) -> bool:
    """The imported object is the code we read; ``False``: absent, skip it."""
    name = patch.target.qualname
    try:
        current = patch.target.current()
    except (AttributeError, KeyError) as error:
        if patch.optional:
            return False
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
    if _patching.defined_at(current) != (found.origin, found.first_line):
        raise FingerprintMismatch(
            f"the code of {name} in google-adk {version} is not the code this "
            "package was checked against (fingerprint mismatch: replaced since "
            "it was imported?); nothing was patched"
        )
    return True


def _plan(
    version: Optional[str], just_loaded: Optional[str]
) -> Tuple[_guards.FamilyGuard, Any, List[_patching.Patch], Dict[str, _source.Found]]:
    """The patches to install, or NotApplicable saying why there are none.

    Every target is checked from its module's source; a target whose module
    is already imported is also checked to be that very code.
    """
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
    reader = _source.SourceReader(skip=_hook.watcher())
    chosen: List[_patching.Patch] = []
    found_by_name: Dict[str, _source.Found] = {}
    for patch in adapter.patches():
        name = patch.target.qualname
        expected = family.fingerprints.get(name, {})
        found = reader.find(patch.target.module, patch.target.path, expected)
        variant = expected.get(found.fingerprint) if found is not None else None
        if variant is None:
            if found is None and patch.optional:
                continue
            if patch.needs_extra and _extra_missing():
                continue  # no SQLAlchemy: DatabaseSessionService can't run
            if found is None:
                raise FingerprintMismatch(
                    f"{name} was not found in the source of google-adk {version}; "
                    "nothing was patched"
                )
            raise FingerprintMismatch(
                f"the code of {name} in google-adk {version} is not the code this "
                "package was checked against (fingerprint mismatch: a modified or "
                "unreleased build?); nothing was patched"
            )
        here = patch.target.loaded() or patch.target.module == just_loaded
        if here and not _check_loaded(patch, found, version):
            continue
        if patch.make_wrapper is not None and patch.variant in (None, variant):
            chosen.append(patch)
            found_by_name[name] = found
    return family, adapter, chosen, found_by_name


def _install_one(patch: _patching.Patch) -> Optional[_patching.Installed]:
    """Wrap one target whose module has run; ``None``: an optional one is absent."""
    target = patch.target
    try:
        current = target.current()
    except (AttributeError, KeyError):
        if patch.optional:
            return None
        raise
    # ``from X import f`` of a function we wrapped in X already: wrap upstream's.
    twin = next((i for i in _installed if i.wrapper is current), None)
    original = twin.original if twin is not None else current
    if twin is None and _patching.is_ours(current):
        raise AlreadyPatched(f"{target.qualname} is already wrapped by another copy")
    found = _found[target.qualname]
    if _patching.defined_at(original) != (found.origin, found.first_line):
        raise FingerprintMismatch(
            f"{target.qualname} is not the code that was checked (replaced?)"
        )
    assert patch.make_wrapper is not None
    return _patching.install(target, patch.make_wrapper, original)


def _install_ready(just_loaded: Optional[str] = None) -> Optional[NotApplicable]:
    """Install the pending wrappers whose module has run; roll back on failure."""
    global _reason
    ready = [p for p in _pending if p.target.loaded() or p.target.module == just_loaded]
    try:
        for patch in ready:
            done = _install_one(patch)
            _pending.remove(patch)
            if done is not None:
                _installed.append(done)
    except Exception as error:
        failed = NotApplicable(
            f"patching google-adk {installed_adk_version()} failed and was rolled "
            f"back: {error!r}"
        )
        _undo()
        _reason = str(failed)
        return failed
    _hook.watch(sorted({p.target.module for p in _pending}))
    return None


def _undo() -> List[str]:
    """Remove every wrapper, cancel the pending ones; the names left buried."""
    global _family
    buried = [
        i.target.qualname for i in reversed(_installed) if not _patching.remove(i)
    ]
    _patching.set_active(False)
    _installed.clear()
    _pending.clear()
    _found.clear()
    _hook.watch(())
    _family = None
    return buried


def apply(strict: bool = False) -> Status:
    """Decide, then install what can be installed now; the rest waits."""
    _apply(strict)
    return status()


def _apply(strict: bool = False, just_loaded: Optional[str] = None) -> bool:
    """:func:`apply` without building a ``Status``; whether the fix applies.

    ``just_loaded``: a module that has run but is still being imported (the
    watcher calls from inside its import).
    """
    global _family, _reason, _decided
    with _lock:
        _decided = True
        if _installed or _pending:
            failed = _install_ready(just_loaded)
            if failed is not None and strict:
                raise failed
            return failed is None
        version = installed_adk_version()
        try:
            family, adapter, chosen, found = _plan(version, just_loaded)
        except NotApplicable as error:
            _reason = str(error)
            _hook.watch(())  # decided: nothing to wait for
            if strict:
                raise
            return False
        from adk_compaction_backport._coordinator import COORDINATOR

        COORDINATOR.configure(adapter.is_stale_error)
        _pending[:] = chosen
        _found.update(found)
        _family, _reason = family.name, None
        _patching.set_active(True)
        failed = _install_ready(just_loaded)
        if failed is None and _pending:
            # A module that finished importing in another thread meanwhile.
            failed = _install_ready()
        if failed is not None and strict:
            raise failed
        return failed is None


def module_loaded(name: str) -> None:
    """The watcher's call: module ``name`` has just run (still importing)."""
    global _warned
    with _lock:
        if _installed or _pending:
            _install_ready(name)
            return
        if _decided or _bootstrap.opted_out():
            return
        if _apply(strict=False, just_loaded=name) or _warned:
            return
        _warned = True
        claimed = _guards.family_for(installed_adk_version()) is not None
        log = logger.warning if claimed else logger.debug
        log("adk-compaction-backport left google-adk untouched: %s", _reason)


def apply_automatically() -> None:
    """Apply as the start-up hook would (google-adk imported before it)."""
    for name in _hook.WATCHED_MODULES:
        if _hook.loaded(name):
            module_loaded(name)
            return


def revert() -> Status:
    global _reason, _decided
    with _lock:
        _decided = True
        was_applied = bool(_installed or _pending)
        buried = _undo()
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
    if not any(_hook.loaded(name) for name in _hook.WATCHED_MODULES):
        if installed_adk_version() is None:
            return "google-adk is not installed; the package does nothing"
        return (
            "google-adk is not imported yet; the fix is applied when one of the "
            "modules it wraps is (google.adk.runners, ...)"
        )
    return (
        "google-adk was imported but the start-up hook did not run (python -S, "
        "or the package was not installed from its wheel?); call "
        "adk_compaction_backport.apply()"
    )


def status() -> Status:
    from adk_compaction_backport._status import Status

    with _lock:
        version = installed_adk_version()
        family = _guards.family_for(version)
        if _installed or _pending:
            return Status(
                adk_version=version,
                family=_family,
                applied=True,
                reason="applied",
                patched=tuple(i.target.qualname for i in _installed),
                pending=tuple(p.target.qualname for p in _pending),
            )
        return Status(
            adk_version=version,
            family=family.name if family else None,
            applied=False,
            reason=_reason_not_applied(),
        )
