"""The start-up hook's settings, for the package.

The hook itself is the top-level module ``_adk_compaction_backport_hook``, so
that interpreter start-up never imports this package.
"""

from _adk_compaction_backport_hook import (
    HOOK_MARK,
    OPT_OUT_VARIABLE,
    TRIGGER_MODULE,
    install,
    opted_out,
)

__all__ = ["HOOK_MARK", "OPT_OUT_VARIABLE", "TRIGGER_MODULE", "install", "opted_out"]
