"""Fingerprints read from source text equal those of the imported functions."""

from __future__ import annotations

import ast
import importlib
import textwrap

import pytest

from adk_compaction_backport import _activation, _guards, _patching, _source

FAMILY = _guards.family_for(_activation.installed_adk_version())


def _targets():
    if FAMILY is None:
        return []
    return [_patching.Patch(code).target for code in FAMILY.code]


@pytest.mark.skipif(FAMILY is None, reason="needs a google-adk release we claim")
@pytest.mark.parametrize("target", _targets(), ids=lambda t: t.qualname)
def test_source_fingerprint_is_the_imported_functions(target):
    """Same value as ``inspect.getsource`` of the object, same file and line."""
    try:
        importlib.import_module(target.module)
        current = target.current()
    except (ImportError, AttributeError, KeyError):
        pytest.skip(f"{target.qualname} is not in this release")
    original = _patching.beneath(current)
    expected = _patching.fingerprint(original)
    reader = _source.SourceReader()
    exact = reader.find(target.module, target.path)  # ast only
    quick = reader.find(target.module, target.path, {expected})  # cut, hashed
    assert exact is not None and quick is not None
    assert exact.fingerprint == quick.fingerprint == expected
    where = (original.__code__.co_filename, original.__code__.co_firstlineno)
    assert (exact.origin, exact.first_line) == where
    assert (quick.origin, quick.first_line) == where
    assert exact.fingerprint in FAMILY.fingerprints.get(target.qualname, {})


SAMPLE = textwrap.dedent(
    '''
    import os
    from .other import (
        imported_name,
        something_else as alias,
    )


    def plain(a, b):
      return a + b


    @decorator
    @decorator_with_args(
        1,
        2,
    )
    async def decorated(
        x,
    ) -> None:
      """A docstring.
    with a line at column 0
      """
      await x
      # a trailing comment


    class Outer:
      """Doc."""

      def method(self):
        return 1

      class Inner:

        def method(self):
          return 2

      def method(self):  # the last definition counts
        return (
    3
        )


    def after():
      pass
    '''
)


def _reference(source: str, qualname: str):
    """Whole-module ``ast``: the answer the quick cut must agree with."""
    found = _source._slow(ast.parse(source), qualname.split("."))
    if found is None:
        return None
    lines = source.splitlines(keepends=True)[found[0] : found[1] + 1]
    return found[0] + 1, _source.digest("".join(lines))


@pytest.mark.parametrize(
    "qualname",
    ["plain", "decorated", "Outer.method", "Outer.Inner.method", "after", "Outer"],
)
def test_quick_cut_agrees_with_ast(qualname):
    reference = _reference(SAMPLE, qualname)
    if qualname == "Outer":
        reference = None  # classes are not targets
    assert _source.locate(SAMPLE, qualname) == reference
    if reference is not None:
        # With the right fingerprint expected, the answer is the same.
        assert _source.locate(SAMPLE, qualname, {reference[1]}) == reference
        # A wrong expectation does not make a wrong answer.
        assert _source.locate(SAMPLE, qualname, {"0" * 16}) == reference


def test_absent_names_and_imports():
    assert _source.locate(SAMPLE, "missing") is None
    assert _source.locate(SAMPLE, "Outer.missing") is None
    assert _source._imported(SAMPLE, "pkg.mod", "imported_name") == (
        "pkg.other",
        "imported_name",
    )
    assert _source._imported(SAMPLE, "pkg.mod", "alias") == (
        "pkg.other",
        "something_else",
    )
    assert _source._imported(SAMPLE, "pkg.mod", "os") is None


def test_the_start_up_hook_watches_the_modules_of_the_families_table():
    """The hook's registration is data the table derives (it imports nothing)."""
    from _adk_compaction_backport_hook import START_UP

    modules, callback = START_UP
    assert set(modules) == set(_guards.watched_modules())
    assert callback == _activation.ON_MODULE_LOADED
    assert _patching.named(callback) == _activation.ACTIVATION.on_module_loaded
