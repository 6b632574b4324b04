"""Activation: decide once whether the fix applies, then install it whole.

The decision is taken once, from google-adk's source: every function the
release family's row of the families table (``_guards``) names must carry the
code we checked (``_source`` reads it through the import system without
importing anything). Only then are wrappers installed, each when the module
holding its target has been imported by the app (right away if it already is;
the start-up hook calls :meth:`Activation.on_module_loaded` for the others).
An install that fails rolls back every wrapper and cancels the pending ones:
all or nothing. One :data:`ACTIVATION` object holds that state.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from importlib import metadata
from typing import TYPE_CHECKING, Dict, List, Optional, Tuple

import _adk_compaction_backport_hook as _hook
from adk_compaction_backport import _guards, _patching, _source
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
# What the start-up hook calls; the same name re-registers the pending modules.
ON_MODULE_LOADED = "adk_compaction_backport._activation:ACTIVATION.on_module_loaded"


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
) -> Tuple[_guards.Family, List[_patching.Patch], Dict[str, _source.Found]]:
    """The patches to install, or NotApplicable saying why there are none.

    Every function of the family's row is checked from its module's source;
    one whose module is already imported is also checked to be that very code.
    """
    if version is None:
        raise UnsupportedRelease("google-adk is not installed; nothing was patched")
    family = _guards.family_for(version)
    if family is None:
        raise UnsupportedRelease(
            f"google-adk {version} is not a release this package claims "
            f"({_guards.claimed_releases()}); nothing was patched. "
            + _guards.not_claimed()
        )
    reader = _source.SourceReader(skip=_hook.watcher())
    chosen: List[_patching.Patch] = []
    found_by_name: Dict[str, _source.Found] = {}
    for code in family.code:
        patch = _patching.Patch(code)
        name = patch.target.qualname
        found = reader.find(code.module, code.path, code.fingerprints)
        if found is None or found.fingerprint not in code.fingerprints:
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
        if patch.wanted_for(found.fingerprint):
            chosen.append(patch)
            found_by_name[name] = found
    return family, chosen, found_by_name


class Activation:
    """The fix's state in this process: decided or not, installed, pending.

    ``apply`` / ``revert`` / ``status`` are the public API's; the start-up
    hook calls ``on_module_loaded``. One lock: a module may finish importing
    in any thread.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self.installed: List[_patching.Installed] = []
        self.pending: List[_patching.Patch] = []  # their module is not imported yet
        self._found: Dict[str, _source.Found] = {}  # where each target's code is
        self._family: Optional[str] = None
        self.reason: Optional[str] = None
        self._decided = False  # apply() or revert() ran: the hook stays out of it
        self._warned = False

    def apply(self, strict: bool = False) -> Status:
        """Decide, then install what can be installed now; the rest waits."""
        self._apply(strict)
        return self.status()

    def revert(self) -> Status:
        with self._lock:
            self._decided = True
            was_applied = bool(self.installed or self.pending)
            buried = self._undo()
            _forget_passes()
            if not was_applied:
                return self.status()
            self.reason = "reverted by adk_compaction_backport.revert()"
            if buried:
                self.reason += (
                    "; these stay wrapped beneath another library's wrapper but "
                    "pass through untouched: " + ", ".join(buried)
                )
            return self.status()

    def on_module_loaded(self, name: str) -> None:
        """The start-up hook's call: module ``name`` has just run (still importing)."""
        with self._lock:
            if self.installed or self.pending:
                self._install_ready(name)
                return
            if self._decided or _hook.opted_out():
                return
            if self._apply(strict=False, just_loaded=name) or self._warned:
                return
            self._warned = True
            claimed = _guards.family_for(installed_adk_version()) is not None
            log = logger.warning if claimed else logger.debug
            log("adk-compaction-backport left google-adk untouched: %s", self.reason)

    def status(self) -> Status:
        from adk_compaction_backport._status import Status

        with self._lock:
            version = installed_adk_version()
            family = _guards.family_for(version)
            if self.installed or self.pending:
                return Status(
                    adk_version=version,
                    family=self._family,
                    applied=True,
                    reason="applied",
                    patched=tuple(i.target.qualname for i in self.installed),
                    pending=tuple(p.target.qualname for p in self.pending),
                )
            return Status(
                adk_version=version,
                family=family.name if family else None,
                applied=False,
                reason=self._reason_not_applied(),
            )

    def _apply(self, strict: bool = False, just_loaded: Optional[str] = None) -> bool:
        """:meth:`apply` without building a ``Status``; whether the fix applies.

        ``just_loaded``: a module that has run but is still being imported (the
        hook calls from inside its import).
        """
        with self._lock:
            self._decided = True
            if self.installed or self.pending:
                failed = self._install_ready(just_loaded)
                if failed is not None and strict:
                    raise failed
                return failed is None
            version = installed_adk_version()
            try:
                family, chosen, found = _plan(version, just_loaded)
            except NotApplicable as error:
                self.reason = str(error)
                _hook.discard(ON_MODULE_LOADED)  # decided: nothing to wait for
                if strict:
                    raise
                return False
            from adk_compaction_backport._coordinator import COORDINATOR

            COORDINATOR.configure(_patching.named(family.stale_error))
            self.pending[:] = chosen
            self._found.update(found)
            self._family, self.reason = family.name, None
            _patching.set_active(True)
            failed = self._install_ready(just_loaded)
            if failed is not None and strict:
                raise failed
            return failed is None

    def _install_one(self, patch: _patching.Patch) -> Optional[_patching.Installed]:
        """Wrap one target whose module has run; ``None``: an optional one is absent."""
        target = patch.target
        try:
            current = target.current()
        except (AttributeError, KeyError):
            if patch.optional:
                return None
            raise
        # ``from X import f`` of a function we wrapped in X already: wrap upstream's.
        twin = next((i for i in self.installed if i.wrapper is current), None)
        original = twin.original if twin is not None else current
        if twin is None and _patching.is_ours(current):
            raise AlreadyPatched(
                f"{target.qualname} is already wrapped by another copy"
            )
        found = self._found[target.qualname]
        if _patching.defined_at(original) != (found.origin, found.first_line):
            raise FingerprintMismatch(
                f"{target.qualname} is not the code that was checked (replaced?)"
            )
        make_wrapper = patch.make_wrapper
        assert make_wrapper is not None
        return _patching.install(target, make_wrapper, original)

    def _install_ready(
        self, just_loaded: Optional[str] = None
    ) -> Optional[NotApplicable]:
        """Install the pending wrappers whose module has run; roll back on failure.

        Then the hook waits for exactly the modules still pending (it calls
        back right away for one that finished importing in another thread).
        """
        ready = [
            p
            for p in self.pending
            if p.target.loaded() or p.target.module == just_loaded
        ]
        try:
            for patch in ready:
                done = self._install_one(patch)
                self.pending.remove(patch)
                if done is not None:
                    self.installed.append(done)
        except Exception as error:
            failed = NotApplicable(
                f"patching google-adk {installed_adk_version()} failed and was "
                f"rolled back: {error!r}"
            )
            self._undo()
            self.reason = str(failed)
            return failed
        waiting = {p.target.module for p in self.pending}
        # Only ever fewer: re-adding the finder would put it ahead of finders
        # installed since (wrapt's), whose loader proxies ours.
        _hook.discard(ON_MODULE_LOADED, set(_hook.watched()) - waiting)
        _hook.when_imported(sorted(waiting), ON_MODULE_LOADED)
        return None

    def _undo(self) -> List[str]:
        """Remove every wrapper, cancel the pending ones; the names left buried."""
        buried = [
            i.target.qualname
            for i in reversed(self.installed)
            if not _patching.remove(i)
        ]
        _patching.set_active(False)
        self.installed.clear()
        self.pending.clear()
        self._found.clear()
        _hook.discard(ON_MODULE_LOADED)
        self._family = None
        return buried

    def _reason_not_applied(self) -> str:
        if self.reason is not None:
            return self.reason
        if _hook.opted_out():
            return (
                f"the automatic patch is off ({_hook.OPT_OUT_VARIABLE} is set); "
                "call adk_compaction_backport.apply() to patch explicitly"
            )
        if not any(_hook.loaded(name) for name in _guards.watched_modules()):
            if installed_adk_version() is None:
                return "google-adk is not installed; the package does nothing"
            return (
                "google-adk is not imported yet; the fix is applied when one of "
                "the modules it wraps is (google.adk.runners, ...)"
            )
        return (
            "google-adk was imported but the start-up hook did not run (python "
            "-S, or the package was not installed from its wheel?); call "
            "adk_compaction_backport.apply()"
        )


ACTIVATION = Activation()


def _forget_passes() -> None:
    """Let go of the columns kept for sessions' next turns (``_column_memory``),
    if the fix ever kept any: released code does not read them."""
    memory = sys.modules.get("adk_compaction_backport._column_memory")
    if memory is not None:
        memory.COLUMN_MEMORY.forget()
