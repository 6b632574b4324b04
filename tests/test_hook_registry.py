"""The start-up hook's registry: post-import callbacks named by string.

In-process, on throwaway modules (``test_activation.py`` covers the hook as
the ``.pth`` line runs it, in fresh interpreters).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path
from typing import Iterator, List

import pytest

import _adk_compaction_backport_hook as hook

SEEN: List[str] = []
CALLBACK = f"{__name__}:SEEN.append"


@pytest.fixture
def modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder on ``sys.path`` for throwaway modules; the registry left clean."""
    monkeypatch.syspath_prepend(str(tmp_path))
    SEEN.clear()
    yield tmp_path
    hook.discard(CALLBACK)
    hook.discard("no_such_module:nothing")
    for path in tmp_path.glob("*.py"):
        sys.modules.pop(path.stem, None)


def test_a_callback_runs_once_right_after_its_module_ran(modules: Path) -> None:
    (modules / "hooked_one.py").write_text(
        f"import {__name__} as t\nRAN_FIRST = t.SEEN == []\n"
    )
    hook.when_imported(["hooked_one"], CALLBACK)
    assert "hooked_one" in hook.watched()
    import hooked_one  # type: ignore[import-not-found]

    assert hooked_one.RAN_FIRST and SEEN == ["hooked_one"]
    assert "hooked_one" not in hook.watched()
    # Already imported: called right away (wrapt's rule).
    hook.when_imported(["hooked_one"], CALLBACK)
    assert SEEN == ["hooked_one", "hooked_one"]


def test_discard_stops_watching_and_leaves_the_meta_path(modules: Path) -> None:
    (modules / "hooked_two.py").write_text("")
    hook.when_imported(["hooked_two", "hooked_never"], CALLBACK)
    hook.discard(CALLBACK, {"hooked_never"})
    assert "hooked_two" in hook.watched() and "hooked_never" not in hook.watched()
    hook.discard(CALLBACK)
    assert "hooked_two" not in hook.watched()
    import hooked_two  # type: ignore[import-not-found]  # noqa: F401

    assert SEEN == []
    if not hook.watched():
        assert hook.watcher() not in sys.meta_path


def test_a_callback_that_fails_never_breaks_the_import(modules: Path) -> None:
    (modules / "hooked_three.py").write_text("VALUE = 3\n")
    hook.when_imported(["hooked_three"], "no_such_module:nothing")
    import hooked_three  # type: ignore[import-not-found]

    assert hooked_three.VALUE == 3


def test_the_hook_imports_nothing_but_os_and_sys() -> None:
    """No import circle: the package's callback is a string in its data."""
    tree = ast.parse(Path(hook.__file__).read_text(encoding="utf-8"))
    imported = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in node.names
    }
    assert imported == {"os", "sys"}
