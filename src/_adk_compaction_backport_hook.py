"""Start-up hook of adk-compaction-backport: act when google-adk's modules load.

The ``.pth`` line imports this module in every interpreter that starts in the
environment. So it lives outside the package (importing the package would
import ``typing``), imports only ``os`` and ``sys`` (already loaded by then),
does no I/O, imports nothing of google-adk and never raises.

It watches the google-adk modules that hold what the fix wraps. When the app
imports one of them, right after that module has run, the package decides
once whether the fix applies (reading the other modules' source, never
importing them) and wraps what that module holds; each other module's
wrappers are installed when the app imports it, whatever the order and
whichever the thread. A module the app never imports is never imported.
"""

import os
import sys

OPT_OUT_VARIABLE = "ADK_COMPACTION_BACKPORT_DISABLE"
TRIGGER_MODULE = "google.adk.runners"
# Every module that holds a target of some release family (a test checks).
WATCHED_MODULES = (
    "google.adk.runners",
    "google.adk.apps.compaction",
    "google.adk.flows.llm_flows.contents",
    "google.adk.sessions.database_session_service",
    "google.adk.sessions.sqlite_session_service",
)
HOOK_MARK = "_adk_compaction_backport_hook"


def opted_out() -> bool:
    """True when the user turned the automatic patch off."""
    return os.environ.get(OPT_OUT_VARIABLE, "") not in ("", "0")


def loaded(name: str) -> bool:
    """Whether module ``name`` is imported and done running."""
    module = sys.modules.get(name)
    spec = getattr(module, "__spec__", None)
    return module is not None and not getattr(spec, "_initializing", False)


def _notify(name: str) -> None:
    """Module ``name`` has just run: let the package act on it."""
    try:
        from adk_compaction_backport._activation import module_loaded

        module_loaded(name)
    except Exception:
        pass


class _ModuleWatcher:
    """Meta-path finder that calls back right after a watched module has run.

    Modelled on virtualenv's ``_virtualenv.py``: it asks the finders after it
    for the real spec, then wraps that spec's loader's ``exec_module``. It
    holds no lock: the import system already lets one thread at a time run a
    given module, and the dictionary it keeps changes atomically.
    """

    _adk_compaction_backport_hook = True

    def __init__(self) -> None:
        self.names = {}  # type: dict

    def find_spec(self, fullname, path, target=None):
        if fullname not in self.names:
            return None
        spec = None
        for finder in list(sys.meta_path):
            find = getattr(finder, "find_spec", None)
            if finder is self or find is None:
                continue
            try:
                spec = find(fullname, path, target)
            except Exception:
                return None  # the import system asks that finder and raises
            if spec is not None:
                break
        loader = getattr(spec, "loader", None)
        exec_module = getattr(loader, "exec_module", None)
        if exec_module is None:
            return None
        before = (
            vars(loader).get("exec_module") if hasattr(loader, "__dict__") else None
        )
        watcher = self

        def exec_then_notify(module):
            try:
                exec_module(module)
            finally:
                try:  # leave the loader as it was
                    if before is None:
                        del loader.exec_module
                    else:
                        loader.exec_module = before
                except Exception:
                    pass
            if watcher.names.pop(fullname, None) is not None:
                if not watcher.names:
                    watcher.remove()
                _notify(fullname)

        try:
            loader.exec_module = exec_then_notify
        except Exception:
            return None
        return spec

    def remove(self) -> None:
        try:  # noqa: SIM105 - contextlib is not worth importing at start-up
            sys.meta_path.remove(self)
        except ValueError:
            pass


_watcher = _ModuleWatcher()


def watch(names) -> None:
    """Watch exactly ``names`` (none: stop watching); one assignment, atomic."""
    _watcher.names = dict.fromkeys(names, True)
    if not _watcher.names:
        _watcher.remove()
    elif not any(f is _watcher for f in sys.meta_path):
        sys.meta_path.insert(0, _watcher)


def watched() -> tuple:
    return tuple(_watcher.names)


def watcher():
    """The finder itself (the package's source reader skips it)."""
    return _watcher


def install() -> None:
    """Arrange for the fix to be applied when the app imports google-adk."""
    try:
        if opted_out():
            return
        for name in WATCHED_MODULES:
            if loaded(name):  # imported before us (an earlier .pth)
                _notify(name)
                return
        watch(WATCHED_MODULES)
    except Exception:
        pass
