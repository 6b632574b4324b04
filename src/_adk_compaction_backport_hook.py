"""Start-up hook of adk-compaction-backport: patch when google-adk's runner loads.

The ``.pth`` line imports this module in every interpreter that starts in the
environment. So it lives outside the package (importing the package would
import ``typing``), imports only ``os`` and ``sys`` (already loaded by then),
does no I/O, imports nothing of google-adk and never raises. The real work
happens in ``adk_compaction_backport._activation`` once google-adk is imported.
"""

import os
import sys

OPT_OUT_VARIABLE = "ADK_COMPACTION_BACKPORT_DISABLE"
TRIGGER_MODULE = "google.adk.runners"
HOOK_MARK = "_adk_compaction_backport_hook"


def opted_out() -> bool:
    """True when the user turned the automatic patch off."""
    return os.environ.get(OPT_OUT_VARIABLE, "") not in ("", "0")


def _apply_now() -> None:
    try:
        from adk_compaction_backport._activation import apply_automatically

        apply_automatically()
    except Exception:
        pass


class _RunnersImportHook:
    """Meta-path finder that runs the patch right after the trigger module loads.

    Modelled on virtualenv's ``_virtualenv.py``: it finds the real spec with
    the other finders, then wraps that module's ``exec_module``.
    """

    _adk_compaction_backport_hook = True

    def __init__(self) -> None:
        self._busy = False

    def find_spec(self, fullname, path, target=None):
        if fullname != TRIGGER_MODULE or self._busy:
            return None
        self._busy = True
        try:
            from importlib.util import find_spec

            spec = find_spec(fullname)
        except Exception:
            return None
        finally:
            self._busy = False
        loader = getattr(spec, "loader", None)
        exec_module = getattr(loader, "exec_module", None)
        if exec_module is None:
            return None
        hook = self

        def exec_then_patch(module):
            exec_module(module)
            hook.remove()
            _apply_now()

        loader.exec_module = exec_then_patch
        return spec

    def remove(self) -> None:
        try:  # noqa: SIM105 - contextlib is not worth importing at start-up
            sys.meta_path.remove(self)
        except ValueError:
            pass


def install() -> None:
    """Arrange for the fix to be applied when google-adk's runner is imported."""
    try:
        if opted_out():
            return
        if TRIGGER_MODULE in sys.modules:
            _apply_now()
            return
        if not any(getattr(f, HOOK_MARK, False) for f in sys.meta_path):
            sys.meta_path.insert(0, _RunnersImportHook())
    except Exception:
        pass
