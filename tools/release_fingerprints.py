"""Fingerprints of google-adk functions, read from unpacked wheels.

Maintainer tool: it computes, without importing google-adk, the same value as
``adk_compaction_backport._patching.fingerprint`` (SHA-256 of the function's
source as ``inspect.getsource`` returns it, first 16 hex digits), so the guards
can list every release of a family without installing each one. It uses the
package's own reader (``adk_compaction_backport._source``), the one the
package checks releases with at run time.

    python tools/release_fingerprints.py DIR [DIR ...] --functions MODULE:QUALNAME ...

Each DIR is an unpacked wheel (the folder holding ``google/``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from adk_compaction_backport._source import fingerprint_in_source

DEFAULT_FUNCTIONS = (
    "google.adk.runners:Runner.run_async",
    "google.adk.runners:Runner.run",
    "google.adk.runners:Runner._new_invocation_context",
    "google.adk.runners:Runner._exec_with_plugin",
    "google.adk.runners:Runner._run_post_invocation_compaction",
    "google.adk.apps.compaction:_run_compaction_for_sliding_window",
    "google.adk.flows.llm_flows.contents:_process_compaction_events",
    "google.adk.flows.llm_flows.contents:_get_contents",
    "google.adk.sessions.database_session_service:DatabaseSessionService.append_event",
    "google.adk.sessions.database_session_service:DatabaseSessionService.get_session",
    "google.adk.sessions.sqlite_session_service:SqliteSessionService.append_event",
)


def fingerprint(wheel_dir: Path, spec: str) -> Optional[str]:
    """The package's own reading of the source (``_source``), from a wheel."""
    module, qualname = spec.split(":")
    path = wheel_dir.joinpath(*module.split(".")).with_suffix(".py")
    if not path.exists():
        return None
    return fingerprint_in_source(path.read_text(encoding="utf-8"), qualname)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dirs", nargs="+", type=Path)
    parser.add_argument("--functions", nargs="*", default=list(DEFAULT_FUNCTIONS))
    args = parser.parse_args(argv)
    for spec in args.functions:
        print(spec)
        for wheel_dir in args.dirs:
            print(f"  {wheel_dir.name:>12}  {fingerprint(wheel_dir, spec) or '-'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
