"""``python -m bench``: arguments, the run itself, and the files it writes."""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

from bench import first_turn_rows, long_session_rows, overhead, readme, report
from bench.envs import Envs
from bench.plan import (
    CLIENTS,
    DATABASES,
    DEFAULT_DATABASES,
    DEFAULT_POSTGRES,
    RELEASES,
    REPO,
    SIDES,
    Plan,
    Rounds,
    WorkloadSpec,
    server_sides,
    sides_for,
)
from bench.runner import (
    configurations,
    failed_servers,
    failed_side,
    run_servers,
    run_side,
    server_rows,
)

# --tiny: new defaults (explicit flags still win), for a seconds-long smoke run.
TINY = {
    "sessions": 2,
    "turns": 4,
    "summarizer_latency": 0.2,
    "reply_latency": 0.02,
    "startup_rounds": 3,
    "import_rounds": 0,
    "turn_rounds": 2,
    "turn_block": 2,
}


def _parser() -> argparse.ArgumentParser:
    d, r = WorkloadSpec(), Rounds()
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="Failures, lost summaries and latency of released google-adk, "
        "this package and the upstream patches, side by side; and the package's "
        "overheads.",
    )
    p.add_argument("--sessions", type=int, default=d.sessions)
    p.add_argument("--turns", type=int, default=d.turns)
    p.add_argument("--interval", type=int, default=d.interval, help="compaction")
    p.add_argument("--overlap", type=int, default=d.overlap, help="compaction")
    p.add_argument(
        "--summarizer-latency", type=float, default=d.summarizer_delay, help="s"
    )
    p.add_argument("--reply-latency", type=float, default=d.reply_delay, help="s")
    p.add_argument("--releases", nargs="+", default=list(RELEASES))
    p.add_argument("--sides", nargs="+", default=list(SIDES), choices=SIDES)
    p.add_argument(
        "--databases", nargs="+", default=list(DEFAULT_DATABASES), choices=DATABASES
    )
    p.add_argument("--clients", nargs="+", default=list(CLIENTS), choices=CLIENTS)
    p.add_argument(
        "--postgres-url",
        default=os.environ.get("ADK_BACKPORT_POSTGRES_URL") or DEFAULT_POSTGRES,
        help="a server's maintenance database; each run gets a new database there",
    )
    p.add_argument("--startup-rounds", type=int, default=r.startup)
    p.add_argument("--import-rounds", type=int, default=r.imports)
    p.add_argument("--turn-rounds", type=int, default=r.turn)
    p.add_argument(
        "--turn-block", type=int, default=r.turn_block, help="turns per round"
    )
    p.add_argument(
        "--tiny",
        action="store_true",
        help="a smoke run: 2 sessions x 4 turns, few rounds (flags still win)",
    )
    p.add_argument(
        "--here",
        action="store_true",
        help="no venvs: this interpreter's google-adk, released and package sides",
    )
    p.add_argument("--python", help="interpreter for the venvs (default: 3.11+)")
    p.add_argument("--cache", type=Path, default=REPO / ".bench")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    p.add_argument("--no-chart", action="store_true")
    p.add_argument(
        "--readme",
        action="store_true",
        help="also copy the tables into docs/benchmark.md and README.md (between "
        "their bench markers)",
    )
    p.add_argument(
        "--overheads-only",
        action="store_true",
        help="only start-up and import ratios per release (bare vs package venvs), "
        "written to overheads.{json,md,png}",
    )
    p.add_argument(
        "--workers",
        nargs="+",
        type=int,
        default=[],
        metavar="N",
        help="also run real `adk api_server` processes on one new PostgreSQL "
        "database per release and side, N of them per row, turns alternating "
        "over them (e.g. --workers 1 2); released and package sides only; "
        "off by default",
    )
    p.add_argument(
        "--workers-only",
        action="store_true",
        help="only the --workers rows (default 1 2), in workers.{json,md}",
    )
    p.add_argument(
        "--first-turn-only",
        action="store_true",
        help="only the first turns of fresh `adk api_server` processes, with the "
        "package and released, per release and session service, in "
        "first_turn.{json,md}",
    )
    p.add_argument("--first-turn-rounds", type=int, default=4)
    p.add_argument(
        "--long-sessions",
        nargs="*",
        type=int,
        metavar="EVENTS",
        help="only long sessions (e.g. 100 1000 4000 events prefilled), the "
        "package against released per release and --databases, in "
        "long_sessions.{json,md}; none with --many-sessions: that row alone",
    )
    p.add_argument("--long-session-turns", type=int, default=long_session_rows.TURNS)
    p.add_argument(
        "--long-session-rounds",
        type=int,
        default=long_session_rows.ROUNDS,
        help="processes per side and row, the sides alternating (ABBA...), pooled",
    )
    p.add_argument(
        "--many-sessions",
        nargs=2,
        type=int,
        metavar=("SESSIONS", "EVENTS"),
        help="with --long-sessions: also SESSIONS sessions of EVENTS events at "
        "once on one real `adk api_server` per side and service, eager HTTP "
        "clients (e.g. 20 1000)",
    )
    return p


def _args(argv: List[str]) -> argparse.Namespace:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.tiny:
        parser.set_defaults(**TINY)
        args = parser.parse_args(argv)
    return args


def _plan(args: argparse.Namespace) -> Plan:
    return Plan(
        workload=WorkloadSpec(
            sessions=args.sessions,
            turns=args.turns,
            interval=args.interval,
            overlap=args.overlap,
            summarizer_delay=args.summarizer_latency,
            reply_delay=args.reply_latency,
        ),
        rounds=Rounds(
            startup=args.startup_rounds,
            imports=args.import_rounds,
            turn=args.turn_rounds,
            turn_block=args.turn_block,
        ),
        releases=args.releases,
        sides=[s for s in SIDES if s in args.sides],
        databases=args.databases,
        clients=args.clients,
        postgres_url=args.postgres_url,
        out=args.out,
        here=args.here,
        venv_python=args.python,
        cache=args.cache,
        chart=not args.no_chart,
        workers=args.workers or ([1, 2] if args.workers_only else []),
    )


def _run_venvs(plan: Plan) -> Dict[str, List[Dict[str, Any]]]:
    """Every release and side in its own venv; overheads against a bare venv."""
    envs = Envs(plan.cache, plan.venv_python)
    builders: Dict[str, Callable[[str], Path]] = {
        "released": envs.package,
        "package": envs.package,
        "patched": envs.patched,
    }
    configs: List[Dict[str, Any]] = []
    overheads: List[Dict[str, Any]] = []
    for release in plan.releases:
        turn = None
        for side in sides_for(plan, release):
            try:
                python = builders[side](release)
            except (subprocess.CalledProcessError, OSError) as error:
                configs += failed_side(plan, release, side, f"environment: {error}")
                continue
            output = run_side(python, plan, release, side, side == "package")
            if "error" in output:
                configs += failed_side(plan, release, side, output["error"])
                continue
            configs += configurations(release, side, output)
            turn = output.get("turn_overhead") or turn
        if "package" in plan.sides:
            with_pkg, bare = envs.package(release), envs.bare(release)
            overheads.append(_overheads(plan, release, with_pkg, bare, turn, False))
    return {"configs": configs, "overheads": overheads}


def _run_here(plan: Plan) -> Dict[str, List[Dict[str, Any]]]:
    """The released and package sides with this interpreter's google-adk."""
    release = metadata.version("google-adk")
    python = Path(sys.executable)
    configs: List[Dict[str, Any]] = []
    turn = None
    for side in [s for s in plan.sides if s != "patched"]:
        output = run_side(python, plan, release, side, side == "package")
        if "error" in output:
            configs += failed_side(plan, release, side, output["error"])
            continue
        configs += configurations(release, side, output)
        turn = output.get("turn_overhead") or turn
    overheads = []
    if "package" in plan.sides:
        overheads.append(_overheads(plan, release, python, python, turn, True))
    return {"configs": configs, "overheads": overheads}


def _run_workers(plan: Plan) -> List[Dict[str, Any]]:
    """``--workers``: per release and side, rows of N real servers each."""
    envs = None if plan.here else Envs(plan.cache, plan.venv_python)
    rows: List[Dict[str, Any]] = []
    releases = [metadata.version("google-adk")] if plan.here else plan.releases
    for release in releases:
        for side in server_sides(plan):
            try:
                python = Path(sys.executable) if envs is None else envs.package(release)
            except (subprocess.CalledProcessError, OSError) as error:
                rows += failed_servers(plan, release, side, f"environment: {error}")
                continue
            output = run_servers(python, plan, release, side)
            if "error" in output:
                rows += failed_servers(plan, release, side, output["error"])
                continue
            new = server_rows(release, side, output)
            for row in new:
                print(f"bench: {report.workers_line(row)}", file=sys.stderr)
            rows += new
    return rows


def _overheads(
    plan: Plan,
    release: str,
    with_pkg: Path,
    without: Path,
    turn: Optional[Dict[str, Any]],
    same_interpreter: bool,
) -> Dict[str, Any]:
    def ratio(args: Any, rounds: int) -> Optional[Dict[str, Any]]:
        return overhead.alternate(with_pkg, without, args, rounds, same_interpreter)

    return {
        "release": release,
        "startup": ratio(overhead.STARTUP, plan.rounds.startup),
        "import": ratio(overhead.IMPORT, plan.rounds.imports),
        "turn": turn,
    }


def _method(plan: Plan) -> str:
    r = plan.rounds
    if plan.here:
        pair = (
            "this interpreter with the package's opt-out "
            "(`ADK_COMPACTION_BACKPORT_DISABLE=1`) vs without it (`--here`: no "
            "second environment, so the `.pth` line itself runs on both sides)"
        )
    else:
        pair = (
            "two venvs that differ only by the package (its `.pth` file included), "
            "a fresh interpreter every time"
        )
    return (
        "Each ratio is with / without the package: the median over alternating "
        "rounds (the order flips every round), with the interquartile range of the "
        "rounds' ratios, from CPU time (user + sys), which other work on the "
        "machine disturbs much less than wall time (wall-time ratios are in "
        f"`latest.json`). Start-up ({r.startup} rounds) and "
        f"`import google.adk.runners` "
        f"({r.imports} rounds): {pair}. Per turn ({r.turn} rounds of {r.turn_block} "
        "sequential turns on a fresh session, SQLite, an app without compaction, "
        "the workload's reply latency set to 0): one process alternating "
        "`adk_compaction_backport.apply()` and `revert()`."
    )


def _load() -> str:
    """The 1-minute load average: other work on the machine skews latencies."""
    try:
        return f"{os.getloadavg()[0]:.1f}"
    except OSError:
        return "unknown"


def _meta(
    plan: Plan, argv: List[str], seconds: float, load_before: str
) -> Dict[str, Any]:
    return {
        "load": f"{load_before} before, {_load()} after",
        "command": " ".join(["python -m bench", *map(shlex.quote, argv)]).strip(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime(
            "%Y-%m-%d %H:%M UTC"
        ),
        "machine": f"{os.cpu_count()} cores, {platform.system()}, "
        f"Python {platform.python_version()} (runner)",
        "workload": plan.workload.as_dict(),
        "rounds": plan.rounds.__dict__,
        "workers": plan.workers,
        "overhead_method": _method(plan),
        "duration_s": seconds,
    }


def _chart(plan: Plan, results_json: Path, png: Path) -> str:
    """Draw with matplotlib here, else in the bench's own tools venv."""
    if importlib.util.find_spec("matplotlib") is not None:
        from bench.chart import draw

        draw(json.loads(results_json.read_text()), png)
        return f"wrote {png}"
    if plan.here:
        return "no chart: matplotlib is not installed here"
    python = Envs(plan.cache, plan.venv_python).tool_python()
    subprocess.run(
        [str(python), "-m", "bench.chart", str(results_json), str(png)],
        cwd=REPO,
        check=True,
    )
    return f"wrote {png}"


def _run_overheads(plan: Plan) -> Dict[str, Any]:
    """Start-up and ``import google.adk.runners`` ratios only, per release."""
    envs = Envs(plan.cache, plan.venv_python)
    overheads = []
    for release in plan.releases:
        with_pkg, bare = envs.package(release), envs.bare(release)
        item = _overheads(plan, release, with_pkg, bare, None, False)
        overheads.append(item)
        print(f"bench: {release}: {report.overhead_line(item)}", file=sys.stderr)
    return {"overheads": overheads}


def _write_section(
    path: Path,
    title: str,
    text: str,
    markers: Tuple[str, str],
    write_readme: bool,
) -> None:
    """``path`` (a markdown page) and, with ``--readme``, the docs' copies."""
    path.write_text(f"# {title}\n\n{text}")
    print(f"bench: wrote {path}", file=sys.stderr)
    if write_readme:
        done = readme.update_pages(text, *markers)
        print(f"bench: updated {', '.join(done) or 'no page (no markers for it)'}")


def overheads_main(plan: Plan, argv: List[str], write_readme: bool) -> int:
    started, load = time.perf_counter(), _load()
    results: Dict[str, Any] = _run_overheads(plan)
    results["meta"] = _meta(plan, argv, time.perf_counter() - started, load)
    plan.out.mkdir(parents=True, exist_ok=True)
    results_json = plan.out / "overheads.json"
    results_json.write_text(json.dumps(results, indent=1) + "\n")
    markers = (readme.OVERHEADS_START, readme.OVERHEADS_END)
    text = report.overheads_body(results)
    _write_section(plan.out / "overheads.md", "Overheads", text, markers, write_readme)
    if plan.chart:
        png = plan.out / "overheads.png"
        if importlib.util.find_spec("matplotlib") is not None:
            from bench.chart import draw_overheads

            draw_overheads(results, png)
        else:
            python = Envs(plan.cache, plan.venv_python).tool_python()
            subprocess.run(
                [str(python), "-m", "bench.chart", "--overheads", *[results_json, png]],
                cwd=REPO,
                check=True,
            )
        print(f"bench: wrote {png}", file=sys.stderr)
    return 0


def workers_main(plan: Plan, argv: List[str], write_readme: bool) -> int:
    """``--workers-only``: the server rows alone, in ``workers.{json,md}``."""
    started, load = time.perf_counter(), _load()
    results: Dict[str, Any] = {"workers": _run_workers(plan)}
    results["meta"] = _meta(plan, argv, time.perf_counter() - started, load)
    plan.out.mkdir(parents=True, exist_ok=True)
    (plan.out / "workers.json").write_text(json.dumps(results, indent=1) + "\n")
    write_workers(plan.out, results, write_readme)
    return 0


def write_workers(out: Path, results: Dict[str, Any], write_readme: bool) -> None:
    """``workers.md`` (and the README's copy) from a run's results."""
    title = "Several workers, one database"
    markers = (readme.WORKERS_START, readme.WORKERS_END)
    text = report.workers_body(results, "###")
    _write_section(out / "workers.md", title, text, markers, write_readme)


def first_turn_main(
    plan: Plan, argv: List[str], rounds: int, write_readme: bool
) -> int:
    """``--first-turn-only``: fresh servers' first turns, in ``first_turn.*``."""
    started, load = time.perf_counter(), _load()
    results: Dict[str, Any] = {"first_turn": first_turn_rows.run(plan, rounds)}
    results["meta"] = _meta(plan, argv, time.perf_counter() - started, load)
    results["meta"]["first_turn_rounds"] = rounds
    plan.out.mkdir(parents=True, exist_ok=True)
    (plan.out / "first_turn.json").write_text(json.dumps(results, indent=1) + "\n")
    markers = (readme.FIRST_TURN_START, readme.FIRST_TURN_END)
    text = first_turn_rows.body(results)
    page = plan.out / "first_turn.md"
    _write_section(page, "First turns", text, markers, write_readme)
    return 0


def long_sessions_main(
    plan: Plan,
    argv: List[str],
    lengths: List[int],
    turns: int,
    many: Optional[List[int]],
    rounds: int = long_session_rows.ROUNDS,
) -> int:
    """``--long-sessions``: the package against released, in ``long_sessions.*``."""
    started, load = time.perf_counter(), _load()
    rows = long_session_rows.run(plan, lengths, turns, many, rounds)
    results: Dict[str, Any] = {"long_sessions": rows}
    results["meta"] = _meta(plan, argv, time.perf_counter() - started, load)
    results["meta"]["long_session_turns"] = turns
    results["meta"]["long_session_rounds"] = rounds
    plan.out.mkdir(parents=True, exist_ok=True)
    (plan.out / "long_sessions.json").write_text(json.dumps(results, indent=1) + "\n")
    page = plan.out / "long_sessions.md"
    page.write_text(f"# Long sessions\n\n{long_session_rows.body(results)}")
    print(f"bench: wrote {page}", file=sys.stderr)
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _args(argv)
    plan = _plan(args)
    if args.long_sessions is not None:
        return long_sessions_main(
            plan,
            argv,
            args.long_sessions,
            args.long_session_turns,
            args.many_sessions,
            args.long_session_rounds,
        )
    if args.first_turn_only:
        return first_turn_main(plan, argv, args.first_turn_rounds, args.readme)
    if args.overheads_only:
        return overheads_main(plan, argv, args.readme)
    if args.workers_only:
        return workers_main(plan, argv, args.readme)
    started, load = time.perf_counter(), _load()
    results: Dict[str, Any] = _run_here(plan) if plan.here else _run_venvs(plan)
    if plan.workers:
        results["workers"] = _run_workers(plan)
    results["meta"] = _meta(plan, argv, time.perf_counter() - started, load)
    plan.out.mkdir(parents=True, exist_ok=True)
    results_json = plan.out / "latest.json"
    results_json.write_text(json.dumps(results, indent=1) + "\n")
    (plan.out / "latest.md").write_text(report.render(results))
    print(f"bench: wrote {plan.out / 'latest.md'}", file=sys.stderr)
    if plan.chart:
        print(f"bench: {_chart(plan, results_json, plan.out / 'latest.png')}")
    if args.readme:
        done = readme.update_pages(report.body(results, "###"))
        print(f"bench: updated {', '.join(done) or 'no page (no bench markers)'}")
    return 0
