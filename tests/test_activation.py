"""The wheel, installed for real, activates itself in a new interpreter.

In-process tests cannot see the ``.pth`` hook: it runs at interpreter start.
So this file builds the wheel once, installs it into fresh virtualenvs (with
pip and with uv) beside the google-adk release of the current environment,
and asks new interpreters what they see.

"Untouched" is measured, not assumed: a probe records where every function of
google-adk's runner, compaction, event and session modules comes from. The
baseline is the same virtualenv started with ``-S`` (no ``.pth`` runs), so the
package cannot have touched anything there.

``import google.adk.runners`` takes about 6 s, so the google-adk virtualenvs
are made once per session and most checks share the pip one.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence

import pytest

from adk_compaction_backport._guards import family_for

REPO = Path(__file__).resolve().parents[1]
DIST = "adk-compaction-backport"
PKG = "adk_compaction_backport"
HOOK = "_adk_compaction_backport_hook"
OPT_OUT = "ADK_COMPACTION_BACKPORT_DISABLE"

# Each test here starts fresh interpreters that import google-adk (seconds
# each): tox runs them on one release per family and the no-op release.
pytestmark = pytest.mark.interpreters

try:
    ADK_VERSION = importlib.metadata.version("google-adk")
except importlib.metadata.PackageNotFoundError:
    pytest.skip("google-adk is not installed here", allow_module_level=True)
IS_CLAIMED = family_for(ADK_VERSION) is not None

if not sys.platform.startswith("linux"):
    pytest.skip("the virtualenv layout here is POSIX's", allow_module_level=True)

PROBE = r'''
"""Print what this interpreter sees: where google-adk's code comes from, status."""
import importlib, json, sys

mode, site_dir, prelude = sys.argv[1:4]
if mode == "baseline":
    sys.path.append(site_dir)  # google-adk importable, no .pth processed
exec(prelude, {})

MODULES = [
    "google.adk.runners",
    "google.adk.apps.compaction",
    "google.adk.events.event",
    "google.adk.events.event_actions",
    "google.adk.sessions.base_session_service",
    "google.adk.sessions.database_session_service",
]


def describe(obj):
    if isinstance(obj, (staticmethod, classmethod)):
        obj = obj.__func__
    code = getattr(obj, "__code__", None)
    where = (
        f"{code.co_filename}:{code.co_firstlineno}"
        if code is not None
        else f"{type(obj).__module__}.{type(obj).__qualname__}"
    )
    return where + (" wrapped" if hasattr(obj, "__wrapped__") else "")


def fingerprint():
    out = {}
    for name in MODULES:
        try:
            mod = importlib.import_module(name)
        except Exception:
            continue
        for attr, obj in vars(mod).items():
            if isinstance(obj, type):
                if not obj.__module__.startswith("google.adk"):
                    continue
                for meth, fn in vars(obj).items():
                    if callable(fn) or isinstance(fn, (staticmethod, classmethod)):
                        out[f"{name}.{attr}.{meth}"] = describe(fn)
            elif callable(obj) and not isinstance(obj, type(sys)):
                out[f"{name}.{attr}"] = describe(obj)
    return {k: v.replace(site_dir, "<site>") for k, v in out.items()}


result = {
    "early": getattr(sys, "_adk_backport_early", None),
    "fingerprint": fingerprint(),
}
if mode != "baseline":
    import adk_compaction_backport as acb

    result["status"] = acb.status().as_dict()
    if mode == "apply":
        result["after_apply"] = acb.apply().as_dict()
print("PROBE-RESULT " + json.dumps(result, default=str))
'''


@dataclass(frozen=True)
class Venv:
    """A virtualenv made by this file, and where its hook files live."""

    root: Path
    installer: str

    @property
    def python(self) -> Path:
        return self.root / "bin" / "python"

    @property
    def site(self) -> Path:
        version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
        return self.root / "lib" / version / "site-packages"


@dataclass(frozen=True)
class Probe:
    """What one new interpreter saw."""

    data: Dict[str, Any]
    stderr: str

    @property
    def status(self) -> Dict[str, Any]:
        return self.data["status"]

    @property
    def fingerprint(self) -> Dict[str, str]:
        return self.data["fingerprint"]


def find_uv() -> Optional[str]:
    """uv from PATH or from the ``uv`` package (tox-uv brings it)."""
    found = shutil.which("uv")
    if found:
        return found
    try:
        from uv import find_uv_bin  # type: ignore[import-not-found]

        return str(find_uv_bin())
    except Exception:
        return None


def clean_env(extra: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
    """The caller's environment minus anything that steers Python or the hook."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PYTHON") and k not in ("VIRTUAL_ENV", OPT_OUT)
    }
    env.update(extra or {})
    return env


def run(argv: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess:
    """Run a set-up command; on failure show what it said."""
    done = subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, **kwargs
    )
    if done.returncode != 0:
        pytest.fail(f"{argv} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done


def python(
    venv: Venv,
    *args: str,
    env: Optional[Mapping[str, str]] = None,
    check: bool = True,
) -> subprocess.CompletedProcess:
    """Run the venv's interpreter as a user would: a new process, clean env."""
    done = subprocess.run(
        [str(venv.python), *args],
        capture_output=True,
        text=True,
        env=clean_env(env),
        cwd=venv.root,
        timeout=300,
    )
    if check and done.returncode != 0:
        pytest.fail(f"python {args} failed:\n{done.stdout}\n{done.stderr}")
    return done


def install_wheel(venv: Venv, wheel: Path) -> None:
    uv = find_uv()
    if venv.installer == "uv":
        assert uv is not None
        run([uv, "pip", "install", "--python", venv.python, "--no-deps", wheel])
    else:
        run(
            [
                venv.python,
                "-m",
                "pip",
                "install",
                "-q",
                "--no-deps",
                "--disable-pip-version-check",
                wheel,
            ]
        )


def make_venv(
    root: Path, installer: str, wheel: Path, constraints: Optional[Path]
) -> Venv:
    """A virtualenv with (if ``constraints``) google-adk, then our wheel."""
    uv = find_uv()
    venv = Venv(root=root, installer=installer)
    if uv:
        run([uv, "venv", "-q", "--python", sys.executable, "--seed", root])
    else:
        run([sys.executable, "-m", "venv", root])
    if constraints is not None:
        adk = f"google-adk=={ADK_VERSION}"
        if uv:
            run(
                [
                    uv,
                    "pip",
                    "install",
                    "-q",
                    "--python",
                    venv.python,
                    "--compile-bytecode",
                    "-c",
                    constraints,
                    adk,
                ]
            )
        else:
            run([venv.python, "-m", "pip", "install", "-q", "-c", constraints, adk])
    install_wheel(venv, wheel)
    return venv


def probe(
    venv: Venv,
    prelude: str,
    mode: str = "status",
    flags: Sequence[str] = (),
    env: Optional[Mapping[str, str]] = None,
) -> Probe:
    script = venv.root / "probe.py"
    if not script.exists():
        script.write_text(PROBE)
    done = python(venv, *flags, str(script), mode, str(venv.site), prelude, env=env)
    lines = [x for x in done.stdout.splitlines() if x.startswith("PROBE-RESULT ")]
    assert lines, f"no probe result:\n{done.stdout}\n{done.stderr}"
    stderr = done.stderr.replace(str(venv.site), "<site>")
    return Probe(json.loads(lines[-1].split(" ", 1)[1]), stderr)


def differences(probe_: Probe, baseline: Probe) -> Dict[str, Any]:
    """Functions of google-adk that are not what the unpatched interpreter has."""
    common = probe_.fingerprint.keys() & baseline.fingerprint.keys()
    return {
        k: (baseline.fingerprint[k], probe_.fingerprint[k])
        for k in sorted(common)
        if probe_.fingerprint[k] != baseline.fingerprint[k]
    }


def assert_untouched(probe_: Probe, baseline: Probe) -> None:
    assert probe_.status["applied"] is False, probe_.status
    assert probe_.status["reason"], probe_.status
    assert not differences(probe_, baseline), differences(probe_, baseline)


def assert_activated(probe_: Probe, baseline: Probe) -> None:
    """Patched on a claimed release; an explicit, untouched no-op elsewhere."""
    assert probe_.status["adk_version"] == ADK_VERSION, probe_.status
    if IS_CLAIMED:
        assert probe_.status["applied"] is True, probe_.status
        assert probe_.status["patched"], probe_.status
        changed = differences(probe_, baseline)
        assert changed, "status says applied, nothing changed"
        # status() names everything that changed (it may name more).
        assert set(changed) <= set(probe_.status["patched"]), changed
    else:
        assert_untouched(probe_, baseline)
    # The package adds nothing to what google-adk itself prints on import.
    assert probe_.stderr == baseline.stderr


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's wheel, built once per session."""
    out = tmp_path_factory.mktemp("wheel")
    uv = find_uv()
    if uv:
        run([uv, "build", "-q", "--wheel", "--out-dir", out, REPO])
    else:
        run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", out, REPO])
    (built,) = out.glob("*.whl")
    return built


@pytest.fixture(scope="session")
def constraints(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Pin the new venvs to this environment's versions: same code, cache hits."""
    pins: Dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name = (dist.metadata["Name"] or "").lower().replace("_", "-")
        if name and name != DIST:
            pins.setdefault(name, dist.version)
    path = tmp_path_factory.mktemp("constraints") / "constraints.txt"
    path.write_text("".join(f"{n}=={v}\n" for n, v in sorted(pins.items())))
    return path


@pytest.fixture(scope="session")
def pip_venv(
    tmp_path_factory: pytest.TempPathFactory, wheel: Path, constraints: Path
) -> Venv:
    """google-adk (installed with uv, for speed) plus our wheel installed by pip."""
    return make_venv(tmp_path_factory.mktemp("pip-venv"), "pip", wheel, constraints)


@pytest.fixture(scope="session")
def uv_venv(
    tmp_path_factory: pytest.TempPathFactory, wheel: Path, constraints: Path
) -> Venv:
    """google-adk plus our wheel, both installed by ``uv pip install``."""
    if find_uv() is None:
        pytest.skip("uv is not installed")
    return make_venv(tmp_path_factory.mktemp("uv-venv"), "uv", wheel, constraints)


@pytest.fixture(params=["pip", "uv"])
def adk_venv(request: pytest.FixtureRequest) -> Venv:
    """Each installer's google-adk virtualenv."""
    return request.getfixturevalue(f"{request.param}_venv")


@pytest.fixture
def bare_venv(tmp_path: Path, wheel: Path) -> Venv:
    """Our wheel alone, without google-adk: cheap, for start-up checks."""
    installer = "uv" if find_uv() else "pip"
    return make_venv(tmp_path / "venv", installer, wheel, constraints=None)


@pytest.fixture(scope="session")
def baseline(pip_venv: Venv) -> Probe:
    """google-adk as it is without the package: ``-S`` runs no ``.pth``."""
    return probe(pip_venv, "import google.adk.runners", mode="baseline", flags=["-S"])


def test_hook_files_land_at_top_of_site_packages(adk_venv: Venv) -> None:
    pth = adk_venv.site / f"{PKG}.pth"
    start = adk_venv.site / f"{PKG}.start"
    assert pth.is_file() and start.is_file()
    lines = pth.read_text().splitlines()
    assert len(lines) == 1 and lines[0].startswith("import "), lines
    assert start.read_text().strip() == f"{HOOK}:install"
    assert (adk_venv.site / f"{HOOK}.py").is_file()
    (record,) = adk_venv.site.glob(f"{PKG}-*.dist-info/RECORD")
    listed = {row.split(",")[0] for row in record.read_text().splitlines()}
    assert {pth.name, start.name, f"{HOOK}.py"} <= listed  # uninstall removes them


def test_importing_runners_applies_the_fix(adk_venv: Venv, baseline: Probe) -> None:
    assert_activated(probe(adk_venv, "import google.adk.runners"), baseline)


@pytest.mark.parametrize(
    "prelude",
    [
        "from google.adk.runners import Runner",
        "from google.adk import Runner",
        "import google.adk.sessions\nimport google.adk.runners",
        f"import {PKG}\nfrom google.adk.runners import Runner",
        "try:\n import google.adk.sessions.database_session_service\n"
        "except ImportError:\n pass  # 2.x without SQLAlchemy (the db extra)\n"
        "import google.adk.apps.compaction\nimport google.adk.runners",
        "import google.adk.flows.llm_flows.contents\nimport google.adk.runners",
        "import threading\n"
        "t = threading.Thread(target=__import__, args=('google.adk.runners',))\n"
        "t.start(); t.join()",
    ],
    ids=[
        "from-runners",
        "from-adk",
        "sessions-first",
        "package-first",
        "database-and-compaction-first",
        "contents-first",
        "in-a-thread",
    ],
)
def test_import_orders(pip_venv: Venv, baseline: Probe, prelude: str) -> None:
    assert_activated(probe(pip_venv, prelude), baseline)


def test_opt_out_leaves_google_adk_untouched(pip_venv: Venv, baseline: Probe) -> None:
    seen = probe(pip_venv, "import google.adk.runners", env={OPT_OUT: "1"})
    assert_untouched(seen, baseline)
    assert OPT_OUT in seen.status["reason"], seen.status
    assert seen.stderr == baseline.stderr


@pytest.mark.parametrize(
    ("value", "hooked"), [("1", False), ("yes", False), ("0", True), ("", True)]
)
def test_opt_out_values(bare_venv: Venv, value: str, hooked: bool) -> None:
    """Any non-empty value but "0" turns the start-up hook off."""
    code = (
        f"import sys; print(any(type(f).__module__ == '{HOOK}' for f in sys.meta_path))"
    )
    done = python(bare_venv, "-c", code, env={OPT_OUT: value})
    assert done.stdout.strip() == str(hooked)
    assert done.stderr == ""


def test_google_adk_imported_before_the_hook(pip_venv: Venv, baseline: Probe) -> None:
    """An earlier-sorted .pth imports google-adk before ours installs its hook.

    (CPython 3.11 runs a venv's .pth files twice; ``setdefault`` keeps what
    the first pass saw.)
    """
    early = pip_venv.site / "00_adk_backport_test_early.pth"
    early.write_text(
        "import sys, google.adk.runners; sys.__dict__.setdefault('_adk_backport_early',"
        f" sorted(m for m in sys.modules if m.startswith('{PKG}')))\n"
    )
    try:
        seen = probe(pip_venv, "", mode="apply")
    finally:
        early.unlink()
    assert seen.data["early"] == [], "google-adk was not imported before the hook"
    assert "Error processing line" not in seen.stderr, seen.stderr
    if seen.status["applied"]:
        assert_activated(seen, baseline)
    else:  # acceptable only with a clear reason and google-adk untouched
        assert_untouched(seen, baseline)
    # Either way, an explicit apply() then gives the release's normal answer.
    assert seen.data["after_apply"]["applied"] is IS_CLAIMED, seen.data["after_apply"]


def test_interpreter_start_imports_only_the_hook_module(pip_venv: Venv) -> None:
    code = "import sys, json; print(json.dumps(sorted(sys.modules)))"
    on = python(pip_venv, "-c", code)
    off = python(pip_venv, "-c", code, env={OPT_OUT: "1"})
    assert on.stderr == "" and off.stderr == ""
    added = set(json.loads(on.stdout)) - set(json.loads(off.stdout))
    ours = {m for m in added if m.split(".")[0] in (PKG, HOOK)}
    assert ours == {HOOK}, ours  # not the package: it would import typing
    stdlib = getattr(sys, "stdlib_module_names", None)
    others = added - ours
    if stdlib is not None:
        others = {m for m in others if m.split(".")[0] not in stdlib}
    assert not others, f"interpreter start imported {sorted(others)}"
    assert not [m for m in json.loads(on.stdout) if m.startswith("google.adk")]
    assert python(pip_venv, "-c", "pass").stderr == ""


def test_python_dash_S_is_clean(pip_venv: Venv) -> None:
    done = python(pip_venv, "-S", "-c", f"import sys; print('{PKG}' in sys.modules)")
    assert (done.stdout.strip(), done.stderr) == ("False", "")
    code = f"import sys; sys.path.append({str(pip_venv.site)!r}); import {PKG}"
    assert python(pip_venv, "-S", "-c", code).stderr == ""


def test_without_google_adk_start_is_silent(bare_venv: Venv) -> None:
    assert python(bare_venv, "-c", "pass").stderr == ""
    code = f"import {PKG} as a; s = a.status(); print(s.applied, bool(s.reason))"
    done = python(bare_venv, "-c", code)
    assert (done.stdout.strip(), done.stderr) == ("False True", "")


def test_leftover_pth_is_silent(bare_venv: Venv) -> None:
    """A deleted package with its .pth left behind must not break start-up."""
    shutil.rmtree(bare_venv.site / PKG)
    assert (bare_venv.site / f"{PKG}.pth").exists()
    done = python(bare_venv, "-c", "import json; print('ok')")
    assert (done.stdout.strip(), done.stderr) == ("ok", "")


def test_uninstall_removes_the_hook_files(bare_venv: Venv) -> None:
    uv = find_uv()
    if uv:
        run([uv, "pip", "uninstall", "--python", bare_venv.python, DIST])
    else:
        run([bare_venv.python, "-m", "pip", "uninstall", "-y", DIST])
    assert not list(bare_venv.site.glob(f"{PKG}*"))
    assert python(bare_venv, "-c", "pass").stderr == ""


def _modules_after(venv: Venv, prelude: str, opted_out: bool) -> set:
    code = f"{prelude}\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))"
    done = python(venv, "-c", code, env={OPT_OUT: "1"} if opted_out else None)
    return set(json.loads(done.stdout.splitlines()[-1]))


@pytest.mark.parametrize(
    "prelude",
    ["import google.adk.runners", "import google.adk.runners\nimport google.adk"],
)
def test_the_package_imports_nothing_on_the_apps_behalf(
    pip_venv: Venv, prelude: str
) -> None:
    """issue #12: no module the app would not have imported without us."""
    on = _modules_after(pip_venv, prelude, opted_out=False)
    off = _modules_after(pip_venv, prelude, opted_out=True)
    added = {m for m in on - off if m.split(".")[0] not in (PKG, HOOK)}
    assert not added, sorted(added)
    assert PKG in on or not IS_CLAIMED


LAZY = r"""
import importlib, json, sys, threading
import _adk_compaction_backport_hook as hook
import adk_compaction_backport as acb
from adk_compaction_backport import _patching

def module_of(qualname):
    return max((m for m in hook.START_UP[0] if qualname.startswith(m + ".")),
               key=len)

def ours(qualname):
    module = sys.modules.get(module_of(qualname))
    if module is None:
        return False
    owner = module
    *parents, name = qualname[len(module.__name__) + 1:].split(".")
    for part in parents:
        owner = getattr(owner, part)
    return _patching.is_ours(vars(owner)[name])

import google.adk.runners
first = acb.status().as_dict()
waiting = sorted({module_of(q) for q in first["pending"]})
unimported = [m for m in waiting if m not in sys.modules]
if sys.argv[1] == "revert":
    acb.revert()
failed = []

def load():
    for name in hook.START_UP[0]:
        try:
            importlib.import_module(name)
        except ImportError:  # e.g. 2.x without SQLAlchemy (the db extra)
            failed.append(name)

thread = threading.Thread(target=load)
thread.start()
thread.join()
last = acb.status().as_dict()
print("LAZY " + json.dumps({
    "first": first, "last": last, "waiting": waiting, "unimported": unimported,
    "ours": {q: ours(q) for q in first["patched"] + first["pending"]},
    "watched": list(hook.watched()),
    "failed": failed,
}))
"""


def _lazy(venv: Venv, mode: str) -> Dict[str, Any]:
    script = venv.root / "lazy_probe.py"
    script.write_text(LAZY)
    done = python(venv, str(script), mode)
    (line,) = [x for x in done.stdout.splitlines() if x.startswith("LAZY ")]
    return json.loads(line[5:])


@pytest.mark.skipif(not IS_CLAIMED, reason="needs a google-adk release we claim")
def test_each_wrapper_waits_for_the_app_to_import_its_module(pip_venv: Venv) -> None:
    seen = _lazy(pip_venv, "wait")
    first, last = seen["first"], seen["last"]
    assert first["applied"] and first["patched"], first
    # What waits, waits for a module that was not imported.
    assert seen["waiting"] == seen["unimported"], seen
    # Imported later, from another thread: installed then. Only what could
    # not be imported at all still waits.
    assert last["applied"], last
    still = set(last["pending"])
    failed = tuple(seen["failed"])
    assert all(q.startswith(failed) for q in still), (still, failed)
    assert set(first["patched"]) | set(first["pending"]) == set(last["patched"]) | still
    assert all(v for q, v in seen["ours"].items() if q not in still), seen["ours"]
    assert not any(v for q, v in seen["ours"].items() if q in still), seen["ours"]
    assert set(seen["watched"]) == set(seen["failed"]) & set(seen["waiting"])


@pytest.mark.skipif(not IS_CLAIMED, reason="needs a google-adk release we claim")
def test_revert_cancels_the_wrappers_still_waiting(pip_venv: Venv) -> None:
    seen = _lazy(pip_venv, "revert")
    last = seen["last"]
    assert not last["applied"] and "reverted" in last["reason"], last
    assert last["patched"] == [] and last["pending"] == []
    assert not any(seen["ours"].values()), seen["ours"]
    assert seen["watched"] == []


MODIFIED_COMPACTION = r"""
import importlib.machinery, os, sys, tempfile
google = importlib.machinery.PathFinder.find_spec("google")
origin = next(
    os.path.join(p, "adk", "apps", "compaction.py")
    for p in google.submodule_search_locations
    if os.path.exists(os.path.join(p, "adk", "apps"))
)
copy = tempfile.mkdtemp() + "/compaction.py"
source = open(origin).read()
name = "def _run_compaction_for_sliding_window("
edited = source.replace(name, name + "  # edited", 1)
assert edited != source
open(copy, "w").write(edited)

class LocallyModified:
    def find_spec(self, name, path=None, target=None):
        if name == "google.adk.apps.compaction":
            return importlib.util.spec_from_file_location(name, copy)

import importlib.util
hook = [getattr(f, "_adk_compaction_backport_hook", False) for f in sys.meta_path]
sys.meta_path.insert(hook.index(True) + 1, LocallyModified())
import google.adk.runners
"""


@pytest.mark.skipif(not IS_CLAIMED, reason="needs a google-adk release we claim")
def test_a_module_not_imported_yet_is_checked_before_anything_is_wrapped(
    pip_venv: Venv, baseline: Probe
) -> None:
    """All or nothing: its source is read, not imported, and it does not match."""
    seen = probe(pip_venv, MODIFIED_COMPACTION)
    assert not seen.status["applied"], seen.status
    # Named where it is checked first: in compaction, or (1.16-1.33) in the
    # runner, which imports it from there by name.
    assert "._run_compaction_for_sliding_window" in seen.status["reason"]
    assert "fingerprint mismatch" in seen.status["reason"]
    assert seen.status["patched"] == [] and seen.status["pending"] == []
    changed = {  # what comes from the edited copy differs by its file name
        k: (was, now)
        for k, (was, now) in differences(seen, baseline).items()
        if now.startswith("<site>")
    }
    assert not changed, changed
