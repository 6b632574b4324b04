"""apply / revert / status and the guards around them, on the real google-adk."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys

import pytest

import adk_compaction_backport as acb
from adk_compaction_backport import _activation, _patching
from adk_compaction_backport._activation import ACTIVATION
from adk_compaction_backport._guards import family_for
from adk_compaction_backport.errors import (
    AlreadyPatched,
    FingerprintMismatch,
    UnsupportedRelease,
)

claimed = pytest.mark.skipif(
    family_for(_activation.installed_adk_version()) is None,
    reason="needs a google-adk release this package claims",
)


@pytest.fixture
def runner_class():
    from google.adk.runners import Runner

    return Runner


@pytest.fixture
def pristine(runner_class):
    """Start unpatched, and leave the process as the start-up hook left it.

    google-adk's runner is imported first, so the start-up hook has run.
    """
    was_applied = acb.status().applied
    acb.revert()
    yield
    acb.revert()
    ACTIVATION.reason = None
    if was_applied:
        acb.apply(strict=True)


def originals(runner_class):
    return {name: vars(runner_class)[name] for name in ("run", "run_async")}


@claimed
def test_apply_twice_is_apply_once_and_revert_restores_exactly(pristine, runner_class):
    before = originals(runner_class)
    first = acb.apply(strict=True)
    wrapper = vars(runner_class)["run_async"]
    second = acb.apply(strict=True)
    assert first.applied and second.applied
    assert first.patched == second.patched
    assert vars(runner_class)["run_async"] is wrapper
    assert wrapper.__wrapped__ is before["run_async"]
    reverted = acb.revert()
    assert not reverted.applied and "reverted" in reverted.reason
    assert originals(runner_class) == before


@claimed
def test_revert_lets_go_of_the_columns_kept_for_next_turns(pristine):
    from adk_compaction_backport._column_memory import COLUMN_MEMORY
    from test_windows import said

    acb.apply(strict=True)
    COLUMN_MEMORY.seen_window(("test", "app", "u", "s"), [said("i1", 1.0)])
    assert len(COLUMN_MEMORY) >= 1
    acb.revert()
    assert len(COLUMN_MEMORY) == 0


@pytest.mark.parametrize(
    ("release", "why"),
    [
        ("1.15.1", "is not a release this package claims"),
        ("2.0.0", "do not compact after an invocation"),
        ("2.1.0", "do not compact after an invocation"),
        ("2.14.0", "not claimed until their code has been checked"),
    ],
)
def test_unclaimed_release_is_an_explicit_no_op(
    pristine, runner_class, monkeypatch, release, why
):
    monkeypatch.setattr(_activation, "installed_adk_version", lambda: release)
    before = originals(runner_class)
    result = acb.apply()
    assert not result.applied
    assert f"{release} is not a release this package claims" in result.reason
    assert why in result.reason
    assert originals(runner_class) == before
    with pytest.raises(UnsupportedRelease, match=re.escape(release)):
        acb.apply(strict=True)


@pytest.mark.parametrize(
    ("release", "family"),
    [
        ("1.16.0", "1.16"),
        ("1.18.0", "1.16"),
        ("1.19.0", "1.19"),
        ("1.23.0", "1.19"),
        ("1.24.0", "1.24"),
        ("1.27.5", "1.24"),
        ("1.28.0", "1.28"),
        ("1.39.1", "1.28"),
        ("2.2.0", "1.28"),
        ("2.6.3", "1.28"),
        ("2.7.0", "2.7"),
        ("2.13.0", "2.7"),
    ],
)
def test_each_claimed_release_belongs_to_one_family(release, family):
    assert family_for(release).name == family


@claimed
def test_code_that_is_not_what_we_checked_is_left_alone(
    pristine, runner_class, monkeypatch
):
    def _new_invocation_context(self, session, **kw):
        raise AssertionError("a locally modified google-adk")

    monkeypatch.setattr(
        runner_class, "_new_invocation_context", _new_invocation_context
    )
    before = originals(runner_class)
    result = acb.apply()
    assert not result.applied
    assert "Runner._new_invocation_context" in result.reason
    assert "fingerprint mismatch" in result.reason
    assert originals(runner_class) == before
    with pytest.raises(FingerprintMismatch):
        acb.apply(strict=True)


@claimed
def test_a_second_copy_of_the_package_does_not_patch_again(pristine, runner_class):
    acb.apply(strict=True)
    wrapper = vars(runner_class)["run_async"]
    # What a second copy (imported under another name) would see: our wrappers
    # in place, but none of its own bookkeeping.
    installed = list(ACTIVATION.installed)
    pending = list(ACTIVATION.pending)
    ACTIVATION.installed.clear()
    ACTIVATION.pending.clear()
    try:
        with pytest.raises(AlreadyPatched, match="already wrapped"):
            acb.apply(strict=True)
        assert vars(runner_class)["run_async"] is wrapper
    finally:
        ACTIVATION.installed.extend(installed)
        ACTIVATION.pending.extend(pending)


@claimed
def test_composes_with_a_wrapt_wrapper_on_either_side(pristine, runner_class):
    wrapt = pytest.importorskip("wrapt")
    calls = []

    def tracing(wrapped, instance, args, kwargs):
        calls.append(kwargs.get("session_id"))
        return wrapped(*args, **kwargs)

    original = vars(runner_class)["run_async"]
    # Their wrapper first, ours on top: our fingerprint sees through theirs.
    wrapt.wrap_function_wrapper(runner_class, "run_async", tracing)
    theirs = vars(runner_class)["run_async"]
    try:
        assert acb.apply(strict=True).applied
        assert vars(runner_class)["run_async"].__wrapped__ is theirs
        acb.revert()
        assert vars(runner_class)["run_async"] is theirs
    finally:
        runner_class.run_async = original

    # Ours first, theirs on top: revert leaves theirs and makes ours inert.
    acb.apply(strict=True)
    ours = vars(runner_class)["run_async"]
    wrapt.wrap_function_wrapper(runner_class, "run_async", tracing)
    try:
        result = acb.revert()
        assert "google.adk.runners.Runner.run_async" in result.reason
        assert vars(runner_class)["run_async"].__wrapped__ is ours
        assert not _patching.is_active()
    finally:
        runner_class.run_async = original


def test_status_explains_itself():
    result = acb.status()
    assert result.adk_version == _activation.installed_adk_version()
    assert result.reason
    assert set(result.as_dict()) == {
        "adk_version",
        "family",
        "applied",
        "reason",
        "patched",
        "pending",
    }


@claimed
def test_each_wrapper_is_the_same_kind_of_function_as_upstreams(pristine):
    """Callers may check (``inspect.isasyncgenfunction(runner.run_async)``)."""
    acb.apply(strict=True)
    kinds = (
        inspect.isasyncgenfunction,
        inspect.iscoroutinefunction,
        inspect.isgeneratorfunction,
    )
    # 1.16-1.18: upstream calls it inside ``asyncio.create_task(...)``; our
    # wrapper hands the work to the coordinator during that call, before the
    # loop runs anything else (sync ``Runner.run`` drains right after), and
    # returns a coroutine, as upstream's does.
    called_synchronously = {"google.adk.runners._run_compaction_for_sliding_window"}
    for item in ACTIVATION.installed:
        if acb.status().family == "1.16" and item.target.qualname in (
            called_synchronously
        ):
            continue
        for kind in kinds:
            assert kind(item.wrapper) == kind(item.original), (
                item.target.qualname,
                kind.__name__,
            )


def test_every_name_in_the_families_table_resolves():
    """The table names wrappers by string: each one exists and is callable."""
    from adk_compaction_backport._guards import FAMILIES

    for family in FAMILIES:
        assert callable(_patching.named(family.stale_error)), family.name
        for code in family.wrapped:
            assert callable(_patching.named(code.wrapper)), code
        for code in family.code:
            assert code.module.startswith("google.adk.") and code.path, code
            if code.variant is not None:
                assert code.variant.fingerprints <= set(code.fingerprints), code


def test_reading_the_table_imports_no_wrapper():
    """Data only: the families' wrappers are imported when the fix is applied."""
    code = (
        "import sys, adk_compaction_backport._guards as g; g.family_for('1.18.0'); "
        "print(sorted(m for m in sys.modules if '.families' in m))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"
