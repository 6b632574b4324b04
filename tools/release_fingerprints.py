"""Fingerprints of google-adk functions, read from unpacked wheels.

Maintainer tool: it computes, without importing google-adk, the same value as
``adk_compaction_backport._patching.fingerprint`` (SHA-256 of the function's
source as ``inspect.getsource`` returns it, first 16 hex digits), so the guards
can list every release of a family without installing each one.

    python tools/release_fingerprints.py DIR [DIR ...] --functions MODULE:QUALNAME ...

Each DIR is an unpacked wheel (the folder holding ``google/``).
"""

from __future__ import annotations

import argparse
import ast
import hashlib
from pathlib import Path
from typing import Iterator, List, Optional, Sequence, Tuple

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


def _definitions(
    body: Sequence[ast.stmt], prefix: str = ""
) -> Iterator[Tuple[str, ast.AST]]:
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            name = prefix + node.name
            yield name, node
            if isinstance(node, ast.ClassDef):
                yield from _definitions(node.body, name + ".")


def fingerprint_in_file(path: Path, qualname: str) -> Optional[str]:
    """What ``inspect.getsource`` would hash: decorators through the last line."""
    source = path.read_text(encoding="utf-8")
    for name, node in _definitions(ast.parse(source).body):
        if name == qualname and not isinstance(node, ast.ClassDef):
            first = min([d.lineno for d in node.decorator_list] + [node.lineno])
            lines = source.splitlines(keepends=True)[first - 1 : node.end_lineno]
            digest = hashlib.sha256("".join(lines).encode("utf-8"))
            return digest.hexdigest()[:16]
    return None


def fingerprint(wheel_dir: Path, spec: str) -> Optional[str]:
    module, qualname = spec.split(":")
    path = wheel_dir.joinpath(*module.split(".")).with_suffix(".py")
    if not path.exists():
        return None
    return fingerprint_in_file(path, qualname)


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
