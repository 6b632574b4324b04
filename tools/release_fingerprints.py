"""Fingerprints of google-adk functions, read from unpacked wheels.

Maintainer tool: it computes, without importing google-adk, the value the
package checks at run time (SHA-256 of the function's source as
``inspect.getsource`` returns it, first 16 hex digits), with the package's own
reader (``adk_compaction_backport._source``), so the families table
(``_guards.py``) can list every release of a family without installing each.
The functions are the families table's own, unless ``--functions`` names
others.

    python tools/release_fingerprints.py DIR [DIR ...] [--functions MODULE:QUALNAME ...]

Each DIR is an unpacked wheel (the folder holding ``google/``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from adk_compaction_backport._guards import FAMILIES
from adk_compaction_backport._source import DirectoryReader


def table_functions() -> List[str]:
    """Every ``module:qualname`` a family of the table wraps or relies on."""
    return sorted({code.target for family in FAMILIES for code in family.code})


def fingerprint(wheel_dir: Path, spec: str) -> Optional[str]:
    """The package's own reading of the source, from an unpacked wheel."""
    module, qualname = spec.split(":")
    found = DirectoryReader(str(wheel_dir)).find(module, qualname)
    return None if found is None else found.fingerprint


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dirs", nargs="+", type=Path)
    parser.add_argument("--functions", nargs="*", default=table_functions())
    args = parser.parse_args(argv)
    for spec in args.functions:
        print(spec)
        for wheel_dir in args.dirs:
            print(f"  {wheel_dir.name:>12}  {fingerprint(wheel_dir, spec) or '-'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
