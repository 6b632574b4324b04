"""Claim a new google-adk release: same code as a family, or what differs.

Maintainer tool (and the daily ``.github/workflows/new-release.yml``): it
downloads the release's wheel (``pip download --no-deps``), reads the
fingerprint of every function of every family in the families table
(``src/adk_compaction_backport/_guards.py``) from it, and says either

- ``same code as family X: claim it``, and writes the one data change that
  claims it: the family's ``Releases(...)`` widened to the release's series
  (and the releases of each fingerprint it carries, words for people); or
- which functions differ, family by family: the release needs a person
  (new fingerprints, perhaps a new family; CONTRIBUTING says how).

    python tools/claim_release.py 2.14.0            # writes the table
    python tools/claim_release.py --latest --dry-run  # PyPI's newest; writes nothing

A release the table claims already is checked too (``claimed``); with
``--pretend-unclaimed`` it is treated as unknown, to see the tool at work.
The exit code is 0 whatever the verdict (2: bad input or no wheel), so the
workflow reads the verdict from ``--github-output``.
"""

from __future__ import annotations

import argparse
import difflib
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from pathlib import Path
from types import ModuleType
from typing import Any, Dict, List, Optional, Sequence, Tuple

from packaging.version import InvalidVersion, Version

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from adk_compaction_backport._source import DirectoryReader

TABLE = Path(__file__).resolve().parents[1] / "src/adk_compaction_backport/_guards.py"
PYPI_JSON = "https://pypi.org/pypi/google-adk/json"


class ClaimError(Exception):
    """Bad input or no wheel: said in one line, exit code 2."""


def load_table(path: Path) -> ModuleType:
    """The families table in ``path`` (a copy may be narrowed, for a try)."""
    spec = importlib.util.spec_from_file_location("_families_table", path)
    assert spec is not None and spec.loader is not None
    table = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(table)
    return table


def latest_release() -> str:
    """PyPI's newest google-adk version."""
    with urllib.request.urlopen(PYPI_JSON, timeout=30) as response:
        return str(json.load(response)["info"]["version"])


def _pip() -> List[str]:
    if importlib.util.find_spec("pip") is not None:
        return [sys.executable, "-m", "pip"]
    found = shutil.which("pip3") or shutil.which("pip")
    if found is None:
        raise ClaimError("pip is needed to download the wheel (pip download)")
    return [found]


def unpacked_wheel(version: str, cache: Path) -> Path:
    """google-adk ``version``'s wheel, downloaded into ``cache`` and unpacked."""
    target = cache / f"google-adk-{version}"
    if (target / "google" / "adk").is_dir():
        return target
    download = [*_pip(), "download", "--no-deps", "--only-binary=:all:", "-q"]
    done = subprocess.run(
        [*download, "-d", str(cache), f"google-adk=={version}"],
        capture_output=True,
        text=True,
    )
    wheels = sorted(cache.glob(f"google_adk-{version}-*.whl"))
    if done.returncode != 0 or not wheels:
        tail = (done.stderr.strip().splitlines() or ["no wheel"])[-1]
        raise ClaimError(f"could not download google-adk {version}: {tail}")
    with zipfile.ZipFile(wheels[0]) as wheel:
        wheel.extractall(
            target, [n for n in wheel.namelist() if n.startswith("google/")]
        )
    return target


def differences(family: Any, reader: DirectoryReader) -> List[str]:
    """The family's functions whose code in the wheel is not the code we checked."""
    differ = []
    for code in family.code:
        found = reader.find(code.module, code.path, code.fingerprints)
        if found is None:
            if not code.optional:
                differ.append(f"{code.qualname}: not found")
        elif found.fingerprint not in code.fingerprints:
            known = ", ".join(code.fingerprints)
            differ.append(f"{code.qualname}: {found.fingerprint} (known: {known})")
    return differ


def _row(text: str, name: str) -> Tuple[int, int]:
    """(start, end) of family ``name``'s row in the table's text."""
    start = text.find(f'name="{name}"')
    if start < 0:
        raise ClaimError(f"family {name} has no row in the table")
    end = text.find("Family(", start)
    return start, len(text) if end < 0 else end


def _series(version: Version) -> int:
    return version.major * 1000 + version.minor


def _distance(releases: Any, version: Version) -> int:
    """How many ``major.minor`` series lie between a span and ``version``."""
    lowest = Version(releases.lowest)
    edge = Version(releases.below) if version >= lowest else lowest
    return abs(_series(edge) - _series(version))


def _series_after(version: Version) -> str:
    return f"{version.major}.{version.minor + 1}.0"


def _label_with(label: str, version: Version) -> str:
    """``2.10.0-2.13.0`` widened to take ``version`` (never narrowed)."""
    first, _, last = label.partition("-")
    try:
        low, high = Version(first), Version(last or first)
    except InvalidVersion:
        return label
    low, high = min(low, version), max(high, version)
    return str(low) if low == high else f"{low}-{high}"


def claimed_text(text: str, family: Any, version: str, reader: DirectoryReader) -> str:
    """The table's text with ``family``'s row widened to take ``version``."""
    parsed = Version(version)
    start, end = _row(text, family.name)
    row = text[start:end]
    releases = family.releases
    lowest = min(Version(releases.lowest), parsed)
    below = max(Version(releases.below), Version(_series_after(parsed)))
    row, count = re.subn(
        r'Releases\("[^"]+", "[^"]+"',
        f'Releases("{lowest}", "{below}"',
        row,
        count=1,
    )
    if count != 1:
        raise ClaimError(f"family {family.name}'s Releases(...) was not found")
    for code in family.code:
        found = reader.find(code.module, code.path, code.fingerprints)
        if found is None or found.fingerprint not in code.fingerprints:
            continue
        label = code.fingerprints[found.fingerprint]
        row = row.replace(
            f'"{found.fingerprint}": "{label}"',
            f'"{found.fingerprint}": "{_label_with(label, parsed)}"',
        )
    return text[:start] + row + text[end:]


def verdict(
    table: ModuleType, version: str, reader: DirectoryReader, pretend: bool
) -> Tuple[str, Any, Dict[str, List[str]]]:
    """("claimed" | "claim" | "differs", the family, what differs per family).

    Families are listed nearest span first: the one a person would widen.
    """
    parsed = Version(version)
    nearest_first = sorted(table.FAMILIES, key=lambda f: _distance(f.releases, parsed))
    differ = {f.name: differences(f, reader) for f in nearest_first}
    owner = None if pretend else table.family_for(version)
    if owner is not None:
        return ("claimed" if not differ[owner.name] else "differs"), owner, differ
    same = [f for f in nearest_first if not differ[f.name]]
    if not same:
        return "differs", None, differ
    return "claim", same[0], differ  # several (unlikely): the nearest span


def report(
    version: str, said: str, family: Any, differ: Dict[str, List[str]]
) -> List[str]:
    """What the tool says, in lines (also the issue the workflow opens)."""
    name = getattr(family, "name", None)
    if said == "claimed":
        return [f"google-adk {version} is claimed by family {name}; its code matches."]
    if said == "claim":
        return [f"google-adk {version}: same code as family {name}: claim it."]
    lines = [f"google-adk {version}: the code differs from every family's:"]
    if name is not None:
        lines[0] = (
            f"google-adk {version} is claimed by family {name}, but its code differs:"
        )
    for family_name, items in differ.items():
        if name is not None and family_name != name:
            continue
        lines.append(f"family {family_name}: {len(items)} function(s) differ")
        lines.extend(f"  {item}" for item in items)
    return lines


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("version", nargs="?", help="a google-adk version, e.g. 2.14.0")
    which.add_argument("--latest", action="store_true", help="PyPI's newest release")
    parser.add_argument("--dry-run", action="store_true", help="write nothing")
    parser.add_argument(
        "--pretend-unclaimed",
        action="store_true",
        help="treat a release the table claims as unknown (to try the tool)",
    )
    parser.add_argument("--table", type=Path, default=TABLE, help="the table to edit")
    parser.add_argument("--cache", type=Path, help="where wheels go (default: temp)")
    parser.add_argument("--report", type=Path, help="also write the verdict here")
    parser.add_argument(
        "--github-output", type=Path, help="append verdict= and version= (Actions)"
    )
    args = parser.parse_args(argv)
    try:
        version = latest_release() if args.latest else args.version
        try:
            Version(version)
        except InvalidVersion:
            raise ClaimError(f"{version!r} is not a version (e.g. 2.14.0)") from None
        table = load_table(args.table)
        with tempfile.TemporaryDirectory() as scratch:
            wheel = unpacked_wheel(version, args.cache or Path(scratch))
            reader = DirectoryReader(str(wheel))
            said, family, differ = verdict(
                table, version, reader, args.pretend_unclaimed
            )
            lines = report(version, said, family, differ)
            if said == "claim":
                before = args.table.read_text(encoding="utf-8")
                after = claimed_text(before, family, version, reader)
                diff = list(
                    difflib.unified_diff(
                        before.splitlines(),
                        after.splitlines(),
                        "table",
                        "claimed",
                        lineterm="",
                    )
                )
                lines.append(
                    "The change that claims it:" if diff else "Already in the span."
                )
                lines.extend(diff)
                if diff and not args.dry_run:
                    args.table.write_text(after, encoding="utf-8")
                    lines.append(f"written to {args.table}")
    except ClaimError as error:
        print(f"claim_release: {error}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    if args.report:
        args.report.write_text("\n".join(lines) + "\n", encoding="utf-8")
    if args.github_output:
        with args.github_output.open("a", encoding="utf-8") as output:
            output.write(f"verdict={said}\nversion={version}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
