"""``python -m adk_compaction_backport doctor | status | verify | fingerprints``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, List, NoReturn, Optional

if TYPE_CHECKING:
    from adk_compaction_backport._status import Status

DEFAULT_AGENT = "compaction_verify"  # verify.served_agent.DEFAULT_AGENT, unimported


def _describe(state: Status) -> List[str]:
    """``status()`` in words: the release, the family, each wrapper."""
    from adk_compaction_backport import __version__

    lines = [
        f"adk-compaction-backport {__version__}",
        f"google-adk installed: {state.adk_version or 'no'}",
        f"release family:       {state.family or 'none claimed'}",
        f"fix applied:          {'yes' if state.applied else 'no'}",
    ]
    if not state.applied:
        lines.append(f"why not:              {state.reason}")
    lines += [f"  wraps {name}" for name in state.patched]
    lines += [
        f"  will wrap {name} (when the app imports its module)"
        for name in state.pending
    ]
    return lines


def doctor() -> int:
    """Import google-adk as an app does, then say what ``status()`` says."""
    import warnings

    warnings.simplefilter("ignore")
    import _adk_compaction_backport_hook as hook
    from adk_compaction_backport._activation import ACTIVATION

    if not hook.opted_out():
        try:
            import google.adk.runners  # noqa: F401 - lets the start-up hook act
        except ImportError as error:
            print(f"google-adk cannot be imported: {error}")
    print("\n".join(_describe(ACTIVATION.status())))
    return 0


def status(as_json: bool = False) -> int:
    """What an app started now gets, decided from the source, importing nothing.

    Every wrapper is then waiting for its module (the app has not imported it).
    """
    import json

    import _adk_compaction_backport_hook as hook
    from adk_compaction_backport import __version__
    from adk_compaction_backport._activation import ACTIVATION

    state = ACTIVATION.status() if hook.opted_out() else ACTIVATION.apply()
    if as_json:
        print(json.dumps({"package": __version__, **state.as_dict()}, indent=2))
    else:
        print("\n".join(_describe(state)))
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


EXIT_CODES = """exit status:
  0  doctor, status, fingerprints: done; verify: the fix held
  1  verify: the fix did not hold (a turn failed, a message or summary was lost)
  2  a setup problem (a missing driver, an unreachable or missing database, a
     bad option) or nothing to verify (a google-adk release the package does
     not claim); the one line printed says what to install or fix
  130  verify: interrupted (Ctrl-C)"""


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad option is one line (and exit status 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see --help)\n")


def _number(kind: Callable[[str], Any], lowest: float) -> Callable[[str], Any]:
    """An argparse type: ``kind`` of the text, at least ``lowest``."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or value < lowest:
            noun = "a whole number" if kind is int else "a number"
            raise argparse.ArgumentTypeError(
                f"expected {noun} >= {lowest:g}, got {text!r}"
            )
        return value

    parse.__name__ = kind.__name__
    return parse


def _parser() -> argparse.ArgumentParser:
    from adk_compaction_backport import __version__

    parser = _Parser(
        prog="python -m adk_compaction_backport",
        description="Check and show the google-adk compaction fix.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"adk-compaction-backport {__version__}",
        help="print the package's version and exit",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser(
        "doctor", help="import google-adk as an app does and say what the fix did"
    )
    state = commands.add_parser(
        "status",
        help="the release, its family and the wrappers installed or waiting "
        "(imports nothing of google-adk)",
    )
    state.add_argument("--json", action="store_true", help="print status() as JSON")
    commands.add_parser("fingerprints", help="fingerprints of the installed google-adk")
    run = commands.add_parser(
        "verify",
        help="reproduce the race without and with the fix",
        description="Run the race without and with the fix, each in its own\n"
        "interpreter, and print what was stored (progress on stderr). The\n"
        "session service is opened once first: a setup problem is one line.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_verify_options(run)
    return parser


def _add_verify_options(run: argparse.ArgumentParser) -> None:
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
    run.add_argument(
        "--user-id", default="user", help="with --server: the user id of the sessions"
    )
    run.add_argument(
        "--interval",
        type=_number(int, 1),
        default=2,
        help="with --server: the agent's compaction_interval (default: %(default)s)",
    )
    run.add_argument(
        "--overlap",
        type=_number(int, 0),
        default=1,
        help="with --server: the agent's overlap_size (default: %(default)s)",
    )
    run.add_argument(
        "--write-agent",
        metavar="AGENTS_DIR",
        help="write the verify agent (fake models) into AGENTS_DIR for "
        "`adk api_server AGENTS_DIR`, then exit",
    )
    run.add_argument(
        "--client",
        choices=["eager", "sequential", "both"],
        default="both",
        help="sequential: read each reply stream to its end before the next "
        "message; eager: send the next message at the final reply, stream still "
        "open, as chat front ends do (default: %(default)s)",
    )
    run.add_argument(
        "--api",
        choices=["async", "sync"],
        default="async",
        help="Runner.run_async, or Runner.run in threads (default: %(default)s)",
    )
    run.add_argument(
        "--sessions",
        type=_number(int, 1),
        default=4,
        help="sessions run at once (default: %(default)s)",
    )
    run.add_argument(
        "--turns",
        type=_number(int, 1),
        default=8,
        help="user messages per session (default: %(default)s)",
    )
    run.add_argument(
        "--summarizer-delay",
        type=_number(float, 0),
        default=0.5,
        help="seconds the fake summarizer takes (default: %(default)s)",
    )
    run.add_argument(
        "--reply-delay",
        type=_number(float, 0),
        default=0.25,
        help="seconds per fake model reply (default: %(default)s)",
    )


def main(argv: Optional[List[str]] = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "doctor":
        return doctor()
    if args.command == "status":
        return status(as_json=args.json)
    if args.command == "fingerprints":
        return fingerprints()
    if args.write_agent:
        from adk_compaction_backport.verify.served_agent import write_agents_dir

        folder = write_agents_dir(
            Path(args.write_agent),
            args.agent,
            interval=args.interval,
            overlap=args.overlap,
            summarizer_delay=args.summarizer_delay,
            reply_delay=args.reply_delay,
        )
        print(f"wrote {folder}; serve it with: adk api_server {args.write_agent}")
        return 0
    try:
        return _verify(args)
    except KeyboardInterrupt:
        print("verify: interrupted", file=sys.stderr)
        return 130


def _verify(args: argparse.Namespace) -> int:
    import warnings

    # google-adk's imports warn about Python versions and deprecations on some
    # releases: not this command's business, and a setup problem is one line.
    warnings.simplefilter("ignore")
    from adk_compaction_backport.verify.cli import verify, verify_server

    clients = ["sequential", "eager"] if args.client == "both" else [args.client]
    if args.server:
        return verify_server(
            args.server,
            args.agent,
            clients,
            {
                "sessions": args.sessions,
                "turns": args.turns,
                "interval": args.interval,
                "overlap": args.overlap,
                "summarizer_delay": args.summarizer_delay,
            },
            user_id=args.user_id,
        )
    workload = ["--sessions", str(args.sessions), "--turns", str(args.turns)]
    workload += ["--summarizer-delay", str(args.summarizer_delay)]
    workload += ["--reply-delay", str(args.reply_delay)]
    return verify(clients, args.api, args.db_url, workload)


if __name__ == "__main__":
    sys.exit(main())
