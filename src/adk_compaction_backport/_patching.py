"""Installs and removes wrappers; keeps each original once; tags what is ours.

Wrappers consult :func:`is_active` on every call, so a wrapper that another
library has since wrapped (and that ``revert()`` therefore cannot take out)
becomes a plain pass-through.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import sys
from typing import Any, Callable, Optional

import _adk_compaction_backport_hook as _hook

OURS = "__adk_compaction_backport__"
_active = False


def is_active() -> bool:
    """Whether wrappers should do their work (False after ``revert()``)."""
    return _active


def set_active(active: bool) -> None:
    global _active
    _active = active


class Target:
    """An attribute of google-adk: ``module`` plus a dotted ``path`` inside it.

    Plain classes here, not dataclasses: the package is imported while the app
    imports google-adk, and building a dataclass costs about a millisecond.
    """

    __slots__ = ("module", "path")

    def __init__(self, module: str, path: str) -> None:
        self.module = module
        self.path = path

    def __repr__(self) -> str:
        return f"Target({self.module!r}, {self.path!r})"

    @property
    def qualname(self) -> str:
        return f"{self.module}.{self.path}"

    def loaded(self) -> bool:
        """Whether the module is imported and done executing (never imports it)."""
        return _hook.loaded(self.module)

    def owner(self) -> Any:
        """The object holding the attribute; ``KeyError`` if not imported.

        Taken from ``sys.modules``: the package never imports google-adk.
        """
        owner: Any = sys.modules[self.module]
        for part in self.path.split(".")[:-1]:
            owner = getattr(owner, part)
        return owner

    @property
    def attribute(self) -> str:
        return self.path.rsplit(".", 1)[-1]

    def current(self) -> Any:
        """The object stored on the owner itself (never an inherited one)."""
        return vars(self.owner())[self.attribute]


def beneath(obj: Any) -> Any:
    """The function beneath any wrappers (``__wrapped__``, ``__func__``)."""
    obj = inspect.unwrap(obj)
    return getattr(obj, "__func__", obj)


def defined_at(obj: Any) -> Optional[tuple]:
    """(file, first line) of the function beneath any wrappers."""
    code = getattr(beneath(obj), "__code__", None)
    if code is None:
        return None
    return code.co_filename, code.co_firstlineno


def fingerprint(obj: Any) -> Optional[str]:
    """A short hash of the source of the function beneath any wrappers.

    ``_source`` computes the same value from a module's text without importing
    it; this one is for an object at hand (tests, tools).
    """
    try:
        source = inspect.getsource(inspect.unwrap(obj))
    except (OSError, TypeError):
        return None
    return hashlib.sha256(source.encode("utf-8")).hexdigest()[:16]


def is_ours(obj: Any) -> bool:
    """Whether ``obj`` is, or wraps, a wrapper installed by this package."""
    seen = 0
    while obj is not None and seen < 100:
        if getattr(obj, OURS, False) is True:
            return True
        obj = getattr(obj, "__wrapped__", None)
        seen += 1
    return False


class Installed:
    __slots__ = ("original", "target", "wrapper")

    def __init__(self, target: Target, original: Any, wrapper: Any) -> None:
        self.target = target
        self.original = original
        self.wrapper = wrapper


def install(
    target: Target, make_wrapper: Callable[[Any], Any], original: Any = None
) -> Installed:
    """Wrap ``original`` (default: what the target holds now) in its place."""
    if original is None:
        original = target.current()
    wrapper = make_wrapper(original)
    setattr(wrapper, OURS, True)
    setattr(target.owner(), target.attribute, wrapper)
    return Installed(target, original, wrapper)


def remove(installed: Installed) -> bool:
    """Put the original back, only if the attribute still holds our wrapper."""
    if (
        vars(installed.target.owner()).get(installed.target.attribute)
        is not installed.wrapper
    ):
        return False
    setattr(installed.target.owner(), installed.target.attribute, installed.original)
    return True


class Patch:
    """One row of the families table (``_guards.Code``) as a ``Target``.

    ``make_wrapper`` is resolved from the row's ``"module:attr"`` only when a
    patch is installed, so reading the table imports no wrapper.
    """

    __slots__ = ("code", "target")

    def __init__(self, code: Any) -> None:
        self.code = code
        self.target = Target(code.module, code.path)

    @property
    def optional(self) -> bool:
        return bool(self.code.optional)

    @property
    def needs_extra(self) -> bool:
        return bool(self.code.needs_extra)

    @property
    def make_wrapper(self) -> Optional[Callable[[Any], Any]]:
        return None if self.code.wrapper is None else named(self.code.wrapper)

    def wanted_for(self, fingerprint: str) -> bool:
        """Whether code with this fingerprint gets the wrapper at all."""
        variant = self.code.variant
        return self.code.wrapper is not None and (
            variant is None or fingerprint in variant.fingerprints
        )

    def __repr__(self) -> str:
        return f"Patch({self.target!r}, ...)"


def named(spec: str) -> Any:
    """The object a ``"package.module:attr.attr"`` string names (imports it)."""
    module, _, path = spec.partition(":")
    found: Any = importlib.import_module(module)
    for part in path.split("."):
        found = getattr(found, part)
    return found
