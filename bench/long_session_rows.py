"""``--long-sessions``: the package against released on long sessions (issue #22).

Runs ``bench.long_sessions`` in each release's bench venv, released and the
package alternating over rounds (``side_order``), and renders one row per
(release, session service, length): turn p50 and p95, CPU per turn, and the
reads the package adds per compaction (how many, the events they returned,
their time), beside the events of google-adk's own read per turn. Targets
(issue #22): at the longest length the package's extra CPU per turn at most 5%
of released's and turn p95 within 5%; the extra CPU at the longest length
within 2x of the shortest's. With ``--many-sessions SESSIONS EVENTS``, a second
table: that many long sessions at once in one process (eager clients), turns
per second and turn p95 (targets: throughput at least released's, p95 within 5%
of released's).
"""

from __future__ import annotations

import math
import sys
from typing import Any, Dict, List, Optional

from bench.plan import Plan
from bench.report import run_line
from bench.runner import package_pythons, run_module
from bench.stats import percentile
from bench.targets import Check

SIDES = ("released", "package")
LENGTHS = (100, 1000, 4000)
TURNS = 8
ROUNDS = 2  # processes per side and row
SQLITE_SERVICE_FROM = (1, 19)
SERVICE_LABELS = {
    "sqlite": "DatabaseSessionService (SQLite)",
    "postgresql": "DatabaseSessionService (PostgreSQL)",
    "sqlite_service": "SqliteSessionService",
}
SHARE = 0.05  # extra CPU per turn and p95, of released's
FLAT = 2.0  # extra CPU at the longest length / at the shortest


def _kinds(plan: Plan, release: str) -> List[str]:
    version = tuple(int(part) for part in release.split(".")[:2])
    return [
        kind
        for kind in plan.databases
        if kind != "sqlite_service" or version >= SQLITE_SERVICE_FROM
    ]


def _runs(kinds: List[str], lengths: List[int]) -> List[Dict[str, Any]]:
    """What to measure in process: one sequential session per length and service."""
    return [
        {"kind": kind, "events": length, "sessions": 1, "client": "sequential"}
        for kind in kinds
        for length in lengths
    ]


def _many_rows(
    plan: Plan, release: str, python: Any, many: List[int], turns: int
) -> List[Dict[str, Any]]:
    """``many`` = (sessions, events) on one real server per side and service
    (``bench.long_server``), both sides in one run of it."""
    sessions, events = many
    runs = [
        {"kind": kind, "events": events, "sessions": sessions, "client": "eager"}
        for kind in _kinds(plan, release)
    ]
    spec = {
        "workload": plan.workload.as_dict(),
        "postgres_url": plan.postgres_url,
        "turns": turns,
        "runs": runs,
    }
    done, output, took = run_module(python, "bench.long_server", spec, "package")
    print(f"bench: google-adk {release} one server: {took:.0f} s", file=sys.stderr)
    if done.returncode != 0 or output is None:
        print("\n".join(done.stderr.splitlines()[-40:]), file=sys.stderr)
        output = {"runs": [{**r, "error": "the run failed"} for r in runs]}
    rows = []
    for result in output["runs"]:
        row = {"release": release, "server": True, **result}
        for side in SIDES:
            if "error" in result:
                row[side] = {"error": result["error"]}
        rows.append(row)
    return rows


def _key(run: Dict[str, Any]) -> tuple:
    return (run["kind"], run["events"], run["sessions"], run["client"])


def side_order(rounds: int) -> List[str]:
    """Released and package alternating, the order flipping every round
    (ABBA...), so a machine that slows down or speeds up during the run
    weighs on both sides alike."""
    return [
        side
        for number in range(rounds)
        for side in (SIDES if number % 2 == 0 else SIDES[::-1])
    ]


def merged(runs: List[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    """One side's rounds of one run as one: turns, reads and counts pooled,
    CPU per turn and turns per second over all of them; ``None`` if a round
    failed (a row is either measured whole or reported failed)."""
    if not runs or any(r is None or "error" in r for r in runs):
        return None
    pooled = dict(runs[0])
    for field in ("turn_ms", "package_reads", "runner_reads", "failures"):
        pooled[field] = [item for r in runs for item in r[field]]
    for field in (
        "failed_turns",
        "summaries",
        "summarizer_calls",
        "full_package_reads",
    ):
        pooled[field] = sum(r[field] for r in runs)
    turns = [len(r["turn_ms"]) for r in runs]
    pooled["cpu_s_per_turn"] = sum(
        r["cpu_s_per_turn"] * n for r, n in zip(runs, turns)
    ) / max(sum(turns), 1)
    pooled["turns_per_s"] = sum(r["turns_per_s"] for r in runs) / len(runs)
    pooled["rounds"] = len(runs)
    return pooled


def run(
    plan: Plan,
    lengths: List[int],
    turns: int,
    many: Optional[List[int]] = None,
    rounds: int = ROUNDS,
) -> List[Dict[str, Any]]:
    """One row per run and release (both sides in it), or one with an ``error``;
    each side measured in ``rounds`` processes, alternating (``side_order``)."""
    rows: List[Dict[str, Any]] = []
    for release, python in package_pythons(plan):
        spec = {
            "workload": plan.workload.as_dict(),
            "postgres_url": plan.postgres_url,
            "turns": turns,
            "runs": _runs(_kinds(plan, release), lengths),
        }
        by_side: Dict[str, Dict[Any, List[Dict[str, Any]]]] = {s: {} for s in SIDES}
        for side in side_order(rounds) if spec["runs"] else ():
            done, output, took = run_module(python, "bench.long_sessions", spec, side)
            print(f"bench: google-adk {release} {side}: {took:.0f} s", file=sys.stderr)
            if done.returncode != 0 or output is None:
                print("\n".join(done.stderr.splitlines()[-40:]), file=sys.stderr)
                output = {"runs": []}
            found = {_key(r): r for r in output["runs"]}
            for wanted in spec["runs"]:
                by_side[side].setdefault(_key(wanted), []).append(
                    found.get(_key(wanted))
                )
        for wanted in spec["runs"]:
            sides = {
                side: merged(by_side[side].get(_key(wanted), [])) for side in SIDES
            }
            rows.append({"release": release, **wanted, **sides})
        if many:
            rows += _many_rows(plan, release, python, many, turns)
    return rows


def _p(run: Dict[str, Any], q: float) -> Optional[float]:
    return percentile(run["turn_ms"], q)


def p_of_every_turn(run: Dict[str, Any], q: float) -> float:
    """The q-th percentile over every turn sent, a failed one counted as never
    answered (its user sends it again and waits anew): infinite once more
    than ``100 - q`` percent of the turns failed."""
    ordered = sorted(run["turn_ms"]) + [math.inf] * run["failed_turns"]
    position = (len(ordered) - 1) * q / 100.0
    if not ordered or ordered[math.ceil(position)] == math.inf:
        return math.inf
    return percentile(ordered, q)


def _ms(value: float) -> str:
    return "never" if value == math.inf else f"{value:,.0f}"


def per_compaction(run: Dict[str, Any]) -> Dict[str, float]:
    """The package's reads per stored summary: calls, events, milliseconds."""
    reads, summaries = run["package_reads"], max(run["summaries"], 1)
    return {
        "reads": len(reads) / summaries,
        "events": sum(events for events, _ in reads) / summaries,
        "ms": sum(seconds for _, seconds in reads) * 1000 / summaries,
    }


def _runner_events(run: Dict[str, Any]) -> float:
    reads = run["runner_reads"]
    return sum(events for events, _ in reads) / max(len(reads), 1)


def _extra_cpu_ms(row: Dict[str, Any]) -> Optional[float]:
    ours, theirs = row.get("package"), row.get("released")
    if not ours or not theirs or "error" in ours or "error" in theirs:
        return None
    return (ours["cpu_s_per_turn"] - theirs["cpu_s_per_turn"]) * 1000


def _released_broken(run: Dict[str, Any]) -> bool:
    """Released failed most turns (1.18.0 crashes on a stored summary): its
    times are those of failures, nothing to compare a cost with."""
    return run["failed_turns"] * 2 > len(run["turn_ms"])


def _broken_note(run: Dict[str, Any]) -> str:
    return (
        f"released failed {run['failed_turns']} of {len(run['turn_ms'])} turns: "
        "nothing to compare"
    )


def checks(row: Dict[str, Any]) -> List[Check]:
    """Extra CPU per turn <= 5% of released's; p95 <= released's + 5%."""
    ours, theirs = row.get("package"), row.get("released")
    extra = _extra_cpu_ms(row)
    if extra is None or ours is None or theirs is None:
        return [Check(None, "not measured")] * 2
    if _released_broken(theirs):
        return [Check(None, _broken_note(theirs))] * 2
    limit = SHARE * theirs["cpu_s_per_turn"] * 1000
    p95_ours, p95_theirs = _p(ours, 95), _p(theirs, 95)
    return [
        Check(extra <= limit, f"{extra:+.1f} ms, limit {limit:.1f}"),
        Check(
            p95_ours <= p95_theirs * (1 + SHARE),
            f"{p95_ours:.0f} vs {p95_theirs:.0f} ms",
        ),
    ]


def flatness(rows: List[Dict[str, Any]]) -> List[str]:
    """Extra CPU at the longest length against the shortest, per release/service."""
    lines = []
    groups: Dict[Any, List[Dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["release"], row["kind"]), []).append(row)
    for (release, kind), group in groups.items():
        group.sort(key=lambda r: r["events"])
        short, long = _extra_cpu_ms(group[0]), _extra_cpu_ms(group[-1])
        if short is None or long is None or len(group) < 2:
            continue
        if any(_released_broken(r["released"]) for r in (group[0], group[-1])):
            lines.append(
                f"- {release}, {SERVICE_LABELS[kind]}: n/a (released fails its "
                "turns); the package's own CPU per turn: "
                f"{group[0]['package']['cpu_s_per_turn'] * 1000:.0f} ms at "
                f"{group[0]['events']} events, "
                f"{group[-1]['package']['cpu_s_per_turn'] * 1000:.0f} ms at "
                f"{group[-1]['events']}"
            )
            continue
        flat = long <= FLAT * max(short, 1.0)
        lines.append(
            f"- {release}, {SERVICE_LABELS[kind]}: extra CPU per turn "
            f"{short:+.1f} ms at {group[0]['events']} events, {long:+.1f} ms at "
            f"{group[-1]['events']} ({'flat' if flat else '**grows**'}; target "
            f"within {FLAT:.0f}x, at least 1 ms)"
        )
    return lines


def _cell(run: Optional[Dict[str, Any]], text: str) -> str:
    return "failed" if not run or "error" in run else text


def body(results: Dict[str, Any]) -> str:
    meta, rows = results["meta"], results["long_sessions"]
    w = meta["workload"]
    lines = [
        run_line(meta),
        "",
        f"One session per row and side, prefilled through the service with the "
        f"given number of old events as a session that compacted all along "
        f"holds them (a user message and a reply per invocation, a summary "
        f"after every {w['interval']} invocations: 800 in 4,000 events at "
        f"interval 2; before 2026-12-07, one summary of them all), then "
        f"{meta['long_session_turns']} sequential turns, compaction every "
        f"{w['interval']} invocations (overlap {w['overlap']}), fake model reply "
        f"{w['reply_delay'] * 1000:.0f} ms, fake summarizer "
        f"{w['summarizer_delay'] * 1000:.0f} ms; one process per side and "
        "round (released: `ADK_COMPACTION_BACKPORT_DISABLE=1`), the sides "
        "alternating and their "
        f"order flipping every round ({meta.get('long_session_rounds', 1)} "
        "rounds, pooled), each after an "
        "untimed warm-up session on the same runner and service (a process's "
        "first turn is measured on its own, in first_turn.md); google-adk "
        "1.18.0 has no `SqliteSessionService` (it came in 1.19.0). CPU: the "
        "process's CPU time per "
        "turn (the event loop's busy time). Package reads: every `get_session` "
        "the package made, per stored summary; google-adk's own read at the start "
        "of each turn for scale. One run on a shared machine: timings are noisy, "
        "counts are exact.",
        "",
        "| google-adk | session service | events | turn p50, + package / released "
        "(ms) | turn p95 | CPU per turn (ms) | package reads per compaction: "
        "calls, events, ms | google-adk's read: events | summaries / calls, failed "
        "turns | extra CPU <= 5% | p95 <= released + 5% |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in [r for r in rows if r["sessions"] == 1]:
        ours, theirs = row.get("package"), row.get("released")
        both = [r for r in (ours, theirs) if r and "error" not in r]
        if len(both) < 2:
            lines.append(
                f"| {row['release']} | {SERVICE_LABELS[row['kind']]} | "
                f"{row['events']} | run failed | | | | | | | |"
            )
            continue
        reads = per_compaction(ours)
        check_cells = " | ".join(c.cell() for c in checks(row))
        lines.append(
            f"| {row['release']} | {SERVICE_LABELS[row['kind']]} | {row['events']} | "
            f"{_p(ours, 50):.0f} / {_p(theirs, 50):.0f} | "
            f"{_p(ours, 95):.0f} / {_p(theirs, 95):.0f} | "
            f"{ours['cpu_s_per_turn'] * 1000:.0f} / "
            f"{theirs['cpu_s_per_turn'] * 1000:.0f} | "
            f"{reads['reads']:.1f}, {reads['events']:.0f}, {reads['ms']:.1f} | "
            f"{_runner_events(theirs):.0f} | "
            f"{ours['summaries']}/{ours['summarizer_calls']}, "
            f"{ours['failed_turns']} + package; "
            f"{theirs['summaries']}/{theirs['summarizer_calls']}, "
            f"{theirs['failed_turns']} released | {check_cells} |"
        )
    flat = flatness([r for r in rows if r["sessions"] == 1])
    if flat:
        lines += ["", "Flat, not linear (extra CPU at the longest length):", *flat]
    many = [r for r in rows if r["sessions"] > 1]
    if many:
        for meta in results.get("many_meta", []):  # runs of that row alone
            lines += ["", run_line(meta)]
        lines += ["", *many_sessions_table(many)]
    return "\n".join(lines) + "\n"


def many_checks(row: Dict[str, Any]) -> List[Check]:
    """Throughput at least released's; p95 no later than released's + 5%."""
    ours, theirs = row["package"], row["released"]
    p95_ours, p95_theirs = _p(ours, 95), _p(theirs, 95)
    return [
        Check(
            ours["turns_per_s"] >= theirs["turns_per_s"],
            f"{ours['turns_per_s']:.2f} vs {theirs['turns_per_s']:.2f}",
        ),
        Check(
            p95_ours <= p95_theirs * (1 + SHARE),
            f"{p95_ours:.0f} vs {p95_theirs:.0f} ms",
        ),
    ]


def many_sessions_table(rows: List[Dict[str, Any]]) -> List[str]:
    """Many long sessions at once on one real server per side (eager clients)."""
    lines = [
        "Many sessions at once on ONE `adk api_server` process per side (the "
        "package, and released with `ADK_COMPACTION_BACKPORT_DISABLE=1` in the "
        "server's environment), each on its own copy of the same prefilled "
        "database, every session driven at once over HTTP by an eager client (the "
        "next message at the final reply), after an untimed warm-up session. "
        "Throughput counts successful turns only: turns that got their final "
        "reply with no error in their stream, divided by the wall time from the "
        "first message to the end of the last stream; failed turns are listed "
        "beside it. Turn time: message sent to final reply, over the turns that "
        "got one; p95 of every turn: over every turn sent, a failed turn counted "
        'as never answered ("never" once more than 5% failed). CPU: the server '
        "process's CPU time over that span, per turn sent. The package's "
        "reads are not counted here (they happen in the server): the rows "
        "above count them.",
        "",
        "| google-adk | session service | sessions x events, turns | successful "
        "turns/s, + package / released | failed turns | turn p50 (ms) | turn p95 "
        "(ms) | p95 of every turn (ms) | server CPU per turn (ms) | "
        "summaries / summarizer calls | "
        "throughput >= released | p95 <= released + 5% |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        ours, theirs = row.get("package"), row.get("released")
        if not ours or not theirs or "error" in ours or "error" in theirs:
            lines.append(
                f"| {row['release']} | {SERVICE_LABELS[row['kind']]} | "
                f"{row['sessions']} x {row['events']} | run failed | | | | | | | | |"
            )
            continue
        label = f"{row['sessions']} x {row['events']}, {ours['turns']}"
        lines.append(
            f"| {row['release']} | {SERVICE_LABELS[row['kind']]} | {label} | "
            f"{ours['turns_per_s']:.2f} / {theirs['turns_per_s']:.2f} | "
            f"{ours['failed_turns']} / {theirs['failed_turns']} | "
            f"{_p(ours, 50):.0f} / {_p(theirs, 50):.0f} | "
            f"{_p(ours, 95):.0f} / {_p(theirs, 95):.0f} | "
            f"{_ms(p_of_every_turn(ours, 95))} / "
            f"{_ms(p_of_every_turn(theirs, 95))} | "
            f"{ours['cpu_s_per_turn'] * 1000:.0f} / "
            f"{theirs['cpu_s_per_turn'] * 1000:.0f} | "
            f"{ours['summaries']} / {ours['summarizer_calls']} + package; "
            f"{theirs['summaries']} / {theirs['summarizer_calls']} released | "
            + " | ".join(c.cell() for c in many_checks(row))
            + " |"
        )
    notes = [_first_failures(row) for row in rows]
    if any(notes):
        lines += ["", "Why turns failed (the first failure of each side):", *notes]
    return lines


def _first_failures(row: Dict[str, Any]) -> str:
    """One line per row naming the first failed turn's error of each side."""
    said = []
    for side, label in (("package", "+ package"), ("released", "released")):
        failures = (row.get(side) or {}).get("failures") or []
        if failures:
            first = failures[0].split(": ", 1)[-1].splitlines()[0][:110]
            said.append(f"{label}: `{first}`")
    if not said:
        return ""
    return f"- {row['release']}, {SERVICE_LABELS[row['kind']]}: " + "; ".join(said)
