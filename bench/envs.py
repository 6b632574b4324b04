"""Per-release virtualenvs made with ``uv``, cached under ``.bench/venvs``.

Three kinds per google-adk release:
* ``bare``: google-adk and the database drivers, nothing of ours (start-up
  and import overheads compare against it);
* ``pkg``: the same plus this repository's package (the released side runs
  here with ``ADK_COMPACTION_BACKPORT_DISABLE=1``, the package side without);
* ``patched``: ``pkg`` with google-adk rebuilt from ``patches/v<release>``.

A venv is rebuilt when its requirements change; the package is reinstalled
when ``src/`` changes and the patched wheel when the series does, so rerunning
the benchmark after a change is one command.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional

from bench.plan import PATCHES, REPO

DRIVERS = [
    "psycopg2-binary",
    "asyncpg",
    "aiosqlite",
    "greenlet",
    # google-adk 2.x made SQLAlchemy an extra ("db"); 1.16-1.18 require it.
    "sqlalchemy[asyncio]>=2,<3",
]
STAMP = "bench-env.json"


def uv_env() -> Dict[str, str]:
    """Precompile at install: without .pyc, importing google-adk takes ~14 s."""
    env = dict(os.environ)
    env["UV_COMPILE_BYTECODE"] = "1"
    env.pop("VIRTUAL_ENV", None)
    return env


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def tree_digest(*roots: Path) -> str:
    """Digest of every file under ``roots`` (caches excluded)."""
    digest = hashlib.sha256()
    for root in roots:
        files = [root] if root.is_file() else sorted(root.rglob("*"))
        for path in files:
            if path.is_file() and "__pycache__" not in path.parts:
                digest.update(str(path.relative_to(REPO)).encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()


def default_python() -> str:
    """An interpreter every release can use (2.12+ need Python >= 3.11).

    The base interpreter, resolved: ``python -m bench`` and ``tox -e bench``
    then share the cached venvs.
    """
    if sys.version_info >= (3, 11):
        return os.path.realpath(getattr(sys, "_base_executable", sys.executable))
    return shutil.which("python3.11") or "3.11"


class Envs:
    """Makes and refreshes the venvs; returns their interpreters."""

    def __init__(self, cache: Path, python: Optional[str] = None) -> None:
        self.root = cache / "venvs"
        self.wheels = cache / "patched"
        self.python = python or default_python()
        self.uv = shutil.which("uv")
        if self.uv is None:
            raise SystemExit("the benchmark needs uv (pip install uv), or use --here")

    def _uv(self, *args: str) -> None:
        subprocess.run([self.uv, *args], check=True, env=uv_env())

    def _venv(
        self, name: str, requirements: List[str], fresh: Optional[Dict] = None
    ) -> Path:
        """A venv with exactly these requirements, reused while they hold.

        ``fresh``: stamps that a new venv has by construction (a digest of the
        package it was just installed with).
        """
        venv = self.root / name
        wanted = {"python": self.python, "requirements": requirements}
        stamp = venv / STAMP
        stamped = json.loads(stamp.read_text()) if stamp.exists() else {}
        if {k: stamped.get(k) for k in wanted} == wanted:
            return venv
        _log(f"creating {venv}")
        shutil.rmtree(venv, ignore_errors=True)
        self._uv("venv", "--quiet", "--python", self.python, str(venv))
        py = str(venv_python(venv))
        self._uv("pip", "install", "--quiet", "--python", py, *requirements)
        stamp.write_text(json.dumps({**wanted, **(fresh or {})}))
        return venv

    def _refresh(self, venv: Path, key: str, digest: str, *uv_args: str) -> None:
        """Reinstall one part of a venv when its source changed."""
        stamp = venv / STAMP
        data = json.loads(stamp.read_text())
        if data.get(key) == digest:
            return
        _log(f"refreshing {key} in {venv}")
        self._uv(*uv_args)
        data[key] = digest
        stamp.write_text(json.dumps(data))

    def bare(self, release: str) -> Path:
        return venv_python(self._venv(f"bare-{release}", _adk(release)))

    def package(self, release: str) -> Path:
        return venv_python(self._with_package(f"pkg-{release}", release))

    def patched(self, release: str) -> Path:
        venv = self._with_package(f"patched-{release}", release)
        series = PATCHES / f"v{release}"
        digest = tree_digest(series)
        stamp = venv / STAMP
        if json.loads(stamp.read_text()).get("series") != digest:
            _log(f"building google-adk {release} from {series}")
            subprocess.run(
                [
                    sys.executable,
                    str(PATCHES / "build_patched.py"),
                    release,
                    "--out",
                    str(self.wheels / release),
                    "--install",
                    str(venv_python(venv)),
                ],
                check=True,
                env=uv_env(),
                stdout=subprocess.DEVNULL,
            )
            data = json.loads(stamp.read_text())
            data["series"] = digest
            stamp.write_text(json.dumps(data))
        return venv_python(venv)

    def _with_package(self, name: str, release: str) -> Path:
        digest = _package_digest()
        venv = self._venv(name, [*_adk(release), str(REPO)], {"package": digest})
        self._refresh(
            venv,
            "package",
            digest,
            "pip",
            "install",
            "--quiet",
            "--python",
            str(venv_python(venv)),
            "--no-deps",
            "--reinstall-package",
            "adk-compaction-backport",
            str(REPO),
        )
        return venv

    def tool_python(self) -> Path:
        """An interpreter with matplotlib, for the chart (never a package dep)."""
        return venv_python(self._venv("tools", ["matplotlib"]))


def _package_digest() -> str:
    return tree_digest(REPO / "src", REPO / "pyproject.toml")


def _adk(release: str) -> List[str]:
    return [f"google-adk=={release}", *DRIVERS]


def _log(text: str) -> None:
    print(f"bench: {text}", file=sys.stderr, flush=True)
