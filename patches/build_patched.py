#!/usr/bin/env python3
"""Build an installable google-adk wheel with an upstream patch series applied.

Downloads the released sdist of google-adk <version>, applies
patches/v<version>/*.patch with ``git am`` (exactly, as verify.py checks) and
builds a wheel. The wheel keeps the release's name and version, so
``pip install <wheel>`` replaces a released google-adk of the same version.
The path of the wheel is the only line printed on stdout.

A wheel already built from the same series in --out is reused (unless --tree
asks for the patched source tree).

Usage: python patches/build_patched.py 2.13.0 [--out DIR] [--tree DIR]
                                       [--install PYTHON]
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Optional, Sequence

# verify.py sits beside this file (running this file puts that folder on
# sys.path); leave no __pycache__ in the source tree.
sys.dont_write_bytecode = True
from verify import (  # noqa: E402
    PATCHES_DIR,
    VerifyError,
    apply_series,
    download_sdist,
    log,
    make_repo,
    pip_python,
    run,
    series_patches,
)


def series_digest(patches: Sequence[Path]) -> str:
    """Returns a digest of the series, to tell whether a built wheel is current."""
    digest = hashlib.sha256()
    for patch in patches:
        digest.update(patch.name.encode())
        digest.update(patch.read_bytes())
    return digest.hexdigest()


def build_wheel(tree: Path, out: Path) -> Path:
    """Builds a wheel of the source tree into `out` (uv if present, else pip)."""
    uv = shutil.which("uv")
    if uv:
        run([uv, "build", "--quiet", "--wheel", "--out-dir", str(out), str(tree)])
    else:
        run(
            [
                pip_python(),
                "-m",
                "pip",
                "wheel",
                "--quiet",
                "--no-deps",
                "--wheel-dir",
                str(out),
                str(tree),
            ]
        )
    wheels = sorted(out.glob("google_adk-*.whl"))
    if len(wheels) != 1:
        raise VerifyError(f"expected one google-adk wheel in {out}, found {wheels}")
    return wheels[0]


def build_patched(version: str, out: Path, tree: Optional[Path] = None) -> Path:
    """Returns the path of a patched google-adk wheel, building it if needed."""
    series_dir = PATCHES_DIR / f"v{version}"
    patches = series_patches(series_dir)
    if not patches:
        raise VerifyError(f"no patch series in {series_dir}")
    out.mkdir(parents=True, exist_ok=True)
    stamp = out / f"google_adk-{version}.series-sha256"
    digest = series_digest(patches)
    existing = sorted(out.glob(f"google_adk-{version}-*.whl"))
    current = stamp.exists() and stamp.read_text().strip() == digest
    if existing and current and tree is None:
        log(f"reusing {existing[0]} (built from the same series)")
        return existing[0]

    work = Path(tempfile.mkdtemp(prefix=f"adk-build-v{version}-"))
    try:
        sdist = download_sdist(version, work / "sdist")
        repo = make_repo(sdist, tree or work / "src", version)
        apply_series(repo, patches)
        log(f"applied {len(patches)} patch(es) to google-adk {version} in {repo}")
        for old in existing:
            old.unlink()
        wheels = work / "wheels"
        built = build_wheel(repo, wheels)
        wheel = out / built.name
        shutil.move(str(built), str(wheel))
        stamp.write_text(digest + "\n")
        return wheel
    finally:
        shutil.rmtree(work, ignore_errors=True)


def install_wheel(wheel: Path, python: str) -> None:
    """Installs the wheel, replacing google-adk, into `python`'s environment."""
    uv = shutil.which("uv")
    if uv:
        args = [uv, "pip", "install", "--quiet", "--python", python, "--reinstall"]
    else:
        args = [python, "-m", "pip", "install", "--quiet", "--force-reinstall"]
    run([*args, "--no-deps", str(wheel)])
    log(f"installed {wheel.name} into {python}")


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Builds the wheel and prints its path."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("version", help="google-adk release, e.g. 2.13.0")
    parser.add_argument(
        "--out",
        type=Path,
        help="folder for the wheel (default: a new temporary folder)",
    )
    parser.add_argument(
        "--tree",
        type=Path,
        help="also keep the patched git tree here (must not exist yet)",
    )
    parser.add_argument(
        "--install",
        metavar="PYTHON",
        help="also install the wheel (no dependencies) for this interpreter",
    )
    args = parser.parse_args(argv)
    version = args.version.removeprefix("v")
    out = args.out or Path(tempfile.mkdtemp(prefix=f"adk-patched-v{version}-"))
    if args.tree and args.tree.exists():
        print(f"{args.tree} already exists", file=sys.stderr)
        return 2
    try:
        wheel = build_patched(
            version, out.resolve(), args.tree.resolve() if args.tree else None
        )
        if args.install:
            install_wheel(wheel, args.install)
    except VerifyError as e:
        print(e, file=sys.stderr)
        return 1
    print(wheel)
    return 0


if __name__ == "__main__":
    sys.exit(main())
