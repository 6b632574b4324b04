"""Start-up hook of adk-compaction-backport: post-import callbacks named by string.

The ``.pth`` line imports this module in every interpreter that starts in the
environment. So it lives outside the package (importing the package would
import ``typing``), imports only ``os`` and ``sys`` (already loaded by then),
does no I/O, imports nothing of google-adk and never raises.

It is a registry in the shape of wrapt's ``importer.py``:
``when_imported(module_names, "package.module:callable")`` calls the named
callable with a module's name right after that module has run (right away if
it already has). The callable is imported only then, so this module imports
nothing of the package. ``install()`` makes the one registration the
``.pth`` line asks for: ``START_UP`` below, data that a test checks against
the package's families table. A module the app never imports is never
imported.
"""

import os
import sys

OPT_OUT_VARIABLE = "ADK_COMPACTION_BACKPORT_DISABLE"
# google-adk's modules that hold code of some release family, and what runs
# when one of them has run (the package decides there, once, and installs).
START_UP = (
    (
        "google.adk.runners",
        "google.adk.apps.compaction",
        "google.adk.flows.llm_flows.contents",
        "google.adk.flows.llm_flows.compaction",
        "google.adk.flows.llm_flows.context._compaction",
        "google.adk.sessions.database_session_service",
        "google.adk.sessions.sqlite_session_service",
        "google.adk.workflow._llm_agent_wrapper",
    ),
    "adk_compaction_backport._activation:ACTIVATION.on_module_loaded",
)


def opted_out() -> bool:
    """True when the user turned the automatic patch off."""
    return os.environ.get(OPT_OUT_VARIABLE, "") not in ("", "0")


def loaded(name: str) -> bool:
    """Whether module ``name`` is imported and done running."""
    module = sys.modules.get(name)
    spec = getattr(module, "__spec__", None)
    return module is not None and not getattr(spec, "_initializing", False)


def _call(callback: str, name: str) -> None:
    """Import and call ``"package.module:attr.attr"`` with ``name``; never raise."""
    try:
        module_name, _, path = callback.partition(":")
        __import__(module_name)
        target = sys.modules[module_name]
        for part in path.split("."):
            target = getattr(target, part)
        target(name)
    except Exception:
        pass


class _ModuleWatcher:
    """Meta-path finder that calls back right after a watched module has run.

    Modelled on virtualenv's ``_virtualenv.py``: it asks the finders after it
    for the real spec, then wraps that spec's loader's ``exec_module``. It
    holds no lock: the import system already lets one thread at a time run a
    given module, and each change to the dictionary it keeps is atomic.
    """

    _adk_compaction_backport_hook = True

    def __init__(self) -> None:
        self.callbacks = {}  # type: dict  # module name -> callback names

    def find_spec(self, fullname, path, target=None):
        if fullname not in self.callbacks:
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
            for callback in watcher.take(fullname):
                _call(callback, fullname)

        try:
            loader.exec_module = exec_then_notify
        except Exception:
            return None
        return spec

    def take(self, name) -> tuple:
        """The callbacks of ``name``, no longer registered (each runs once)."""
        taken = self.callbacks.pop(name, ())  # atomic: two threads, one winner
        if not self.callbacks:
            self.set({})
        return taken

    def set(self, callbacks) -> None:
        self.callbacks = callbacks
        if not callbacks:
            try:  # noqa: SIM105 - contextlib is not worth importing at start-up
                sys.meta_path.remove(self)
            except ValueError:
                pass
        elif not any(f is self for f in sys.meta_path):
            sys.meta_path.insert(0, self)


_watcher = _ModuleWatcher()


def when_imported(module_names, callback) -> None:
    """Call ``callback`` (``"package.module:attr"``) with each module's name
    once that module has run: now for one that already has, else when the app
    imports it."""
    callbacks = dict(_watcher.callbacks)
    now = []
    for name in module_names:
        if loaded(name):
            now.append(name)
        elif callback not in callbacks.get(name, ()):
            callbacks[name] = (*callbacks.get(name, ()), callback)
    _watcher.set(callbacks)
    for name in now:
        _call(callback, name)


def discard(callback, module_names=None) -> None:
    """``callback`` is no longer called for ``module_names`` (default: any)."""
    callbacks = {}
    for name, names in _watcher.callbacks.items():
        if module_names is None or name in module_names:
            names = tuple(c for c in names if c != callback)
        if names:
            callbacks[name] = names
    _watcher.set(callbacks)


def watched() -> tuple:
    """The modules some callback waits for."""
    return tuple(_watcher.callbacks)


def watcher():
    """The finder itself (the package's source reader skips it)."""
    return _watcher


def install() -> None:
    """Arrange for the fix to be applied when the app imports google-adk."""
    try:
        if not opted_out():
            when_imported(*START_UP)
    except Exception:
        pass
