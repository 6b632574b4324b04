"""``python -m adk_compaction_backport doctor | verify | fingerprints``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional

DEFAULT_AGENT = "compaction_verify"  # verify.served_agent.DEFAULT_AGENT, unimported


def doctor() -> int:
    """Say in words what ``status()`` says."""
    import warnings

    warnings.simplefilter("ignore")
    import _adk_compaction_backport_hook as hook
    from adk_compaction_backport._activation import ACTIVATION

    if not hook.opted_out():
        try:
            import google.adk.runners  # noqa: F401 - lets the start-up hook act
        except ImportError as error:
            print(f"google-adk cannot be imported: {error}")
    state = ACTIVATION.status()
    print(f"google-adk installed: {state.adk_version or 'no'}")
    print(f"release family:       {state.family or 'none claimed'}")
    print(f"fix applied:          {'yes' if state.applied else 'no'}")
    if not state.applied:
        print(f"why not:              {state.reason}")
    for name in state.patched:
        print(f"  wraps {name}")
    for name in state.pending:
        print(f"  will wrap {name} (when the app imports its module)")
    return 0


def fingerprints() -> int:
    """Print the fingerprints of the installed release (the families table's).

    Read from the source, as the package checks them: nothing is imported.
    """
    from adk_compaction_backport import _guards
    from adk_compaction_backport._source import SourceReader

    reader = SourceReader()
    for family in _guards.FAMILIES:
        for code in family.code:
            found = reader.find(code.module, code.path)
            value = found.fingerprint if found is not None else "missing"
            print(f"{family.name}  {code.qualname}  {value}")
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m adk_compaction_backport")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("doctor", help="print status() in words")
    commands.add_parser("fingerprints", help="fingerprints of the installed google-adk")
    run = commands.add_parser(
        "verify", help="reproduce the race without and with the fix"
    )
    run.add_argument(
        "--db-url",
        help="your own database, as for `adk web --session_service_uri` "
        "(sqlite:///x.db is SqliteSessionService where ADK maps it so); "
        "default: a temporary SQLite file through DatabaseSessionService",
    )
    run.add_argument(
        "--server",
        metavar="URL",
        help="run against this running `adk api_server` (e.g. http://127.0.0.1:8000)"
        " instead of in-process",
    )
    run.add_argument(
        "--agent",
        default=DEFAULT_AGENT,
        help="with --server: the agent (app) name (default: %(default)s)",
    )
    run.add_argument("--user-id", default="user", help="with --server: the user id")
    run.add_argument(
        "--interval",
        default="2",
        help="with --server: the agent's compaction_interval (default: %(default)s)",
    )
    run.add_argument(
        "--overlap",
        default="1",
        help="with --server: the agent's overlap_size (default: %(default)s)",
    )
    run.add_argument(
        "--write-agent",
        metavar="AGENTS_DIR",
        help="write the verify agent (fake models) into AGENTS_DIR for "
        "`adk api_server AGENTS_DIR`, then exit",
    )
    run.add_argument(
        "--client", choices=["eager", "sequential", "both"], default="both"
    )
    run.add_argument("--api", choices=["async", "sync"], default="async")
    run.add_argument("--sessions", default="4")
    run.add_argument("--turns", default="8")
    run.add_argument("--summarizer-delay", default="0.5", help="seconds")
    run.add_argument("--reply-delay", default="0.25", help="seconds per model reply")
    args = parser.parse_args(argv)
    if args.command == "doctor":
        return doctor()
    if args.command == "fingerprints":
        return fingerprints()
    if args.write_agent:
        from adk_compaction_backport.verify.served_agent import write_agents_dir

        folder = write_agents_dir(
            Path(args.write_agent),
            args.agent,
            interval=int(args.interval),
            overlap=int(args.overlap),
            summarizer_delay=float(args.summarizer_delay),
            reply_delay=float(args.reply_delay),
        )
        print(f"wrote {folder}; serve it with: adk api_server {args.write_agent}")
        return 0
    from adk_compaction_backport.verify.cli import verify, verify_server

    clients = ["sequential", "eager"] if args.client == "both" else [args.client]
    workload = ["--sessions", args.sessions, "--turns", args.turns]
    workload += ["--summarizer-delay", args.summarizer_delay]
    workload += ["--reply-delay", args.reply_delay]
    if args.server:
        return verify_server(
            args.server,
            args.agent,
            clients,
            {
                "sessions": int(args.sessions),
                "turns": int(args.turns),
                "interval": int(args.interval),
                "overlap": int(args.overlap),
                "summarizer_delay": float(args.summarizer_delay),
            },
            user_id=args.user_id,
        )
    return verify(clients, args.api, args.db_url, workload)


if __name__ == "__main__":
    sys.exit(main())
