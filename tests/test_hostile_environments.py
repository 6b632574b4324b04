"""Start-up conditions nobody chose on purpose, each in a fresh interpreter.

The interpreter is this environment's own (the package is installed here with
its ``.pth``, as the tox envs install the wheel), so each case costs one
google-adk import. In every case: no traceback, google-adk patched whole or
not at all, and ``status()`` says which. ``test_activation.py`` covers the
cases that need a virtualenv of their own (a ``.pth`` left behind by an
uninstall, google-adk imported by an earlier ``.pth``, the opt-out).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence

import pytest

import adk_compaction_backport
from _adk_compaction_backport_hook import OPT_OUT_VARIABLE
from adk_compaction_backport._activation import installed_adk_version
from adk_compaction_backport._guards import family_for
from adk_compaction_backport.verify.urls import database_url, uses_async_engine

HERE = Path(__file__).parent
PACKAGE_PARENT = str(Path(adk_compaction_backport.__file__).resolve().parents[1])
# ``python -S`` does not even read pyvenv.cfg: the venv's paths come from here.
IMPORTABLE = [p for p in sys.path if p.endswith("site-packages")] + [PACKAGE_PARENT]

pytestmark = [
    pytest.mark.interpreters,  # fresh interpreters: one release per family (tox)
    pytest.mark.skipif(
        family_for(installed_adk_version()) is None, reason="needs a claimed release"
    ),
    pytest.mark.skipif(
        os.environ.get(OPT_OUT_VARIABLE, "") not in ("", "0"),
        reason="the start-up hook is turned off here",
    ),
]


@dataclass(frozen=True)
class Seen:
    """What one fresh interpreter reported, and what it printed on stderr."""

    report: Dict[str, Any]
    stderr: str

    @property
    def status(self) -> Dict[str, Any]:
        return self.report["status"]

    def assert_clean(self) -> None:
        assert "Traceback" not in self.stderr, self.stderr
        assert "Error processing line" not in self.stderr, self.stderr
        ours = set(self.report["ours"].values())
        assert len(ours) == 1, f"half-patched: {self.report['ours']}"
        assert ours == {self.status["applied"]}, self.report


def probe(
    prelude: str,
    epilogue: str = "",
    flags: Sequence[str] = (),
    env: Optional[Mapping[str, str]] = None,
) -> Seen:
    base = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    done = subprocess.run(
        [sys.executable, *flags, str(HERE / "_env_probe.py"), prelude, epilogue],
        capture_output=True,
        text=True,
        env={**base, "PYTHONWARNINGS": "ignore", **(env or {})},
        cwd=str(HERE),
        timeout=300,
    )
    lines = [x for x in done.stdout.splitlines() if x.startswith("PROBE ")]
    assert lines, f"no report ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return Seen(json.loads(lines[-1].split(" ", 1)[1]), done.stderr)


def test_python_dash_S_explains_itself_and_apply_still_works():
    seen = probe(
        f"import sys; sys.path += {IMPORTABLE!r}",
        "import adk_compaction_backport as a\n"
        "report['before'] = a.status().as_dict()\n"
        "report['strict'] = a.apply(strict=True).applied\n",
        flags=["-S"],
    )
    assert seen.report["before"]["applied"] is False
    assert "python -S" in seen.report["before"]["reason"]
    assert seen.report["strict"] is True
    seen.assert_clean()


def test_no_user_site():
    seen = probe("", env={"PYTHONNOUSERSITE": "1"})
    assert seen.status["applied"], seen.status
    seen.assert_clean()


def test_google_adk_imported_from_sitecustomize(tmp_path: Path):
    (tmp_path / "sitecustomize.py").write_text("import google.adk.runners\n")
    seen = probe(
        "import sys; report['early'] = 'google.adk.runners' in sys.modules",
        env={"PYTHONPATH": str(tmp_path)},
    )
    assert seen.report["early"] is True
    assert seen.status["applied"], seen.status
    seen.assert_clean()


def vendored_copy(into: Path, name: str) -> None:
    """The package as a vendoring tool leaves it: imports renamed, nothing else."""
    source = Path(adk_compaction_backport.__file__).parent
    pattern = re.compile(r"^(\s*)(from|import) adk_compaction_backport\b", re.M)
    for path in source.rglob("*.py"):
        target = into / name / path.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(pattern.sub(rf"\1\2 {name}", path.read_text()))


def test_a_second_copy_under_another_name_does_not_patch_again(tmp_path: Path):
    vendored_copy(tmp_path, "vendored_acb")
    seen = probe(
        f"import sys; sys.path.append({str(tmp_path)!r})",
        "import vendored_acb as v\n"
        "from adk_compaction_backport._patching import is_ours\n"
        "from google.adk.runners import Runner\n"
        "report['copy'] = v.apply().as_dict()\n"
        "try:\n"
        "    v.apply(strict=True)\n"
        "except Exception as error:\n"
        "    report['strict'] = type(error).__name__\n"
        "layers, f = 0, vars(Runner)['run_async']\n"
        "while f is not None:\n"
        "    layers += getattr(f, '__adk_compaction_backport__', False) is True\n"
        "    f = getattr(f, '__wrapped__', None)\n"
        "report['layers'] = layers\n",
    )
    assert seen.status["applied"], seen.status
    assert seen.report["copy"]["applied"] is False
    assert "already wrapped" in seen.report["copy"]["reason"]
    assert seen.report["strict"] == "AlreadyPatched"
    assert seen.report["layers"] == 1
    seen.assert_clean()


def test_run_async_already_wrapped_by_wrapt():
    pytest.importorskip("wrapt")
    seen = probe(
        "import wrapt\n"
        "calls = report.setdefault('traced', [])\n"
        "def tracing(wrapped, instance, args, kwargs):\n"
        "    calls.append(kwargs.get('session_id'))\n"
        "    return wrapped(*args, **kwargs)\n"
        "wrapt.register_post_import_hook(\n"
        "    lambda m: wrapt.wrap_function_wrapper(m, 'Runner.run_async', tracing),\n"
        "    'google.adk.runners',\n"
        ")\n",
        "report['summaries'] = run_turns(None, sessions=1, threads=False)\n",
    )
    assert seen.status["applied"], seen.status
    assert seen.report["traced"] == ["s0", "s0"]  # their wrapper still runs
    assert seen.report["summaries"] == [1]  # and so does ours
    seen.assert_clean()


def test_many_threads_calling_sync_run_at_once(request, tmp_path):
    if uses_async_engine():
        # 1.19+: every sync ``Runner.run`` has an event loop of its own, and an
        # asyncpg pool cannot cross loops (an upstream limitation, README).
        url = database_url(f"sqlite:///{tmp_path / 'threads.db'}")
    else:
        url = database_url(request.getfixturevalue("postgres_db_url"))
    seen = probe(
        "",
        f"report['summaries'] = run_turns({url!r}, sessions=8, threads=True)\n",
    )
    assert seen.status["applied"], seen.status
    assert seen.report["summaries"] == [1] * 8
    assert "Exception in thread" not in seen.stderr, seen.stderr
    seen.assert_clean()


MODIFIED_RUNNERS = """
import importlib.util, sys, tempfile
found = importlib.util.find_spec('google.adk')
origin = found.submodule_search_locations[0] + '/runners.py'
copy = tempfile.mkdtemp() + '/runners.py'
source = open(origin).read()
edited = source.replace('  async def run_async(', '  async def run_async(  # edit', 1)
assert edited != source
open(copy, 'w').write(edited)

class LocallyModified:
    def find_spec(self, name, path=None, target=None):
        if name == 'google.adk.runners':
            return importlib.util.spec_from_file_location(name, copy)

hook = [getattr(f, '_adk_compaction_backport_hook', False) for f in sys.meta_path]
sys.meta_path.insert(hook.index(True) + 1, LocallyModified())
"""


def test_a_release_whose_code_does_not_match_its_fingerprint():
    seen = probe(MODIFIED_RUNNERS)
    assert seen.status["applied"] is False
    assert "fingerprint" in seen.status["reason"]
    assert "Runner.run_async" in seen.status["reason"]
    assert not any(seen.report["ours"].values())
    seen.assert_clean()
