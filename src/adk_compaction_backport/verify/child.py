"""One side of ``verify``: run the workload in this process, print JSON.

Run as ``python -m adk_compaction_backport.verify.child``; the parent sets
``ADK_COMPACTION_BACKPORT_DISABLE`` for the unpatched side, so that side
really is unpatched.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import tempfile
import warnings
from typing import List, Optional

from adk_compaction_backport.verify.services import verify_service


def _parse(argv: Optional[List[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="adk_compaction_backport.verify.child")
    parser.add_argument("--patched", action="store_true")
    parser.add_argument("--db-url")
    parser.add_argument("--app-name", default="compaction_verify")
    parser.add_argument("--sessions", type=int, default=4)
    parser.add_argument("--turns", type=int, default=8)
    parser.add_argument("--interval", type=int, default=2)
    parser.add_argument("--overlap", type=int, default=1)
    parser.add_argument("--summarizer-delay", type=float, default=0.5)
    parser.add_argument("--reply-delay", type=float, default=0.0)
    parser.add_argument("--client", default="eager", choices=["eager", "sequential"])
    parser.add_argument("--api", default="async", choices=["async", "sync"])
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = _parse(argv)
    warnings.simplefilter("ignore")
    # Warnings are collected (the scenario counts them), not printed.
    logging.basicConfig(level=logging.WARNING, handlers=[logging.NullHandler()])
    import google.adk.runners  # noqa: F401 - the start-up hook patches here

    import adk_compaction_backport as acb

    if args.patched:
        acb.apply()  # a no-op when the start-up hook already did it
    from adk_compaction_backport.verify.scenario import Workload, run_workload

    workload = Workload.from_mapping(vars(args))
    with tempfile.TemporaryDirectory(prefix="adk-compaction-verify-") as tmp:
        # With --db-url: the service `adk web --session_service_uri` would pick.
        service = verify_service(args.db_url, tmp)
        report = asyncio.run(
            run_workload("", workload, app_name=args.app_name, session_service=service)
        )
    result = report.as_dict()
    result["service"] = type(service).__name__
    result["applied"] = acb.status().applied
    result["reason"] = acb.status().reason
    json.dump(result, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
