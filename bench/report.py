"""``latest.md``: the tables a user reads to choose between the three sides."""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from bench.plan import LOCK_OFF, SIDE_LABELS
from bench.targets import (
    CONFIG_TARGETS,
    IMPORT_LIMIT,
    STARTUP_LIMIT,
    TURN_COST_LIMIT,
    config_checks,
    ratio_check,
    ratio_text,
)


def _row(cells: List[Any]) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _table(header: List[str], rows: List[List[Any]]) -> List[str]:
    return [_row(header), _row(["---"] * len(header)), *(_row(r) for r in rows)]


def _pair(a: Optional[float], b: Optional[float]) -> str:
    def fmt(x: Optional[float]) -> str:
        return "-" if x is None else f"{x:.0f}"

    return f"{fmt(a)} / {fmt(b)}"


def _bad(value: int) -> str:
    """Failures in bold, so a reader's eye lands on them."""
    return f"**{value}**" if value else "0"


def side_label(config: Dict[str, Any]) -> str:
    label = SIDE_LABELS[config["side"]]
    status = config.get("status") or {}
    if config["side"] in ("package", LOCK_OFF) and not status.get("applied"):
        label += " (**not applied**)"
    return label


def _outcome_row(config: Dict[str, Any]) -> List[Any]:
    head = [config["release"], side_label(config), config["database"], config["client"]]
    if "error" in config:
        return [*head, f"run failed: {config['error'][:120]}", *[""] * 11]
    c, b = config["compaction"], config["baseline"]
    persisted = str(c["summaries_persisted"])
    if c["summaries_wrong_range"]:
        persisted += f" ({c['summaries_wrong_range']} wrong range)"
    return [
        *head,
        _bad(c["turns_failed"]),
        _bad(c["user_messages_lost"]),
        c["summaries_triggered"],
        persisted,
        _bad(c["summaries_duplicated"]),
        _bad(c["summaries_lost"]),
        c["summarizer_calls"],
        _pair(c["turn_p50_ms"], c["turn_p95_ms"]),
        _pair(c["stream_p50_ms"], c["stream_p95_ms"]),
        _pair(c.get("summary_write_p50_ms"), c.get("summary_write_p95_ms")),
        _pair(b["turn_p50_ms"], b["turn_p95_ms"]),
        _pair(b["stream_p50_ms"], b["stream_p95_ms"]),
    ]


OUTCOME_HEADER = [
    "google-adk",
    "side",
    "database",
    "client",
    "turns failed",
    "user messages lost",
    "summaries triggered",
    "persisted",
    "duplicated",
    "lost",
    "summarizer calls",
    "turn ms p50 / p95",
    "stream ms p50 / p95",
    "summary write ms p50 / p95",
    "no compaction: turn ms p50 / p95",
    "no compaction: stream ms p50 / p95",
]


def outcomes(results: Dict[str, Any]) -> List[str]:
    return _table(OUTCOME_HEADER, [_outcome_row(c) for c in results["configs"]])


def targets(results: Dict[str, Any]) -> List[str]:
    delay = results["meta"]["workload"]["summarizer_delay"]
    rows = []
    released = {
        (c["release"], c["database"], c["client"]): c
        for c in results["configs"]
        if c.get("side") == "released"
    }
    for config in results["configs"]:
        twin = released.get((config["release"], config["database"], config["client"]))
        checks = config_checks(config, delay, twin)
        rows.append(
            [
                config["release"],
                side_label(config),
                config["database"],
                config["client"],
                *(c.cell() for c in checks),
            ]
        )
    return _table(["google-adk", "side", "database", "client", *CONFIG_TARGETS], rows)


def overheads(results: Dict[str, Any]) -> List[str]:
    rows = []
    for item in results["overheads"]:
        turn = item.get("turn") or {}
        status = turn.get("status") or {}
        rows.append(
            [
                item["release"],
                ratio_text(item.get("startup")),
                ratio_check(item.get("startup"), STARTUP_LIMIT).cell(),
                ratio_text(item.get("import")),
                ratio_check(item.get("import"), IMPORT_LIMIT).cell(),
                ratio_text(turn),
                ratio_check(turn, TURN_COST_LIMIT).cell(),
                "applied" if status.get("applied") else "**not applied**",
            ]
        )
    header = [
        "google-adk",
        "start-up (`python -c pass`)",
        f"start-up <= {STARTUP_LIMIT}",
        "`import google.adk.runners`",
        f"import <= {IMPORT_LIMIT}",
        "per turn, no compaction",
        f"per turn <= {TURN_COST_LIMIT}",
        "package during the per-turn run",
    ]
    return _table(header, rows)


def overhead_line(item: Dict[str, Any]) -> str:
    """One release's start-up and import ratios, for the progress log."""
    return (
        f"start-up {ratio_text(item.get('startup'))}, "
        f"import {ratio_text(item.get('import'))}"
    )


def _seconds(ratio: Optional[Dict[str, Any]]) -> str:
    """CPU medians with / without, in ms."""
    if not ratio or ratio.get("with_median_s") is None:
        return "-"
    return (
        f"{ratio['with_median_s'] * 1000:.0f} / {ratio['without_median_s'] * 1000:.0f}"
    )


def overheads_body(results: Dict[str, Any]) -> str:
    """``--overheads-only``: start-up and import ratios per release."""
    meta = results["meta"]
    rows = []
    for item in results["overheads"]:
        wall = (item.get("import") or {}).get("wall")
        rows.append(
            [
                item["release"],
                ratio_text(item.get("startup")),
                ratio_check(item.get("startup"), STARTUP_LIMIT).cell(),
                ratio_text(item.get("import")),
                _seconds(item.get("import")),
                ratio_check(item.get("import"), IMPORT_LIMIT).cell(),
                ratio_text(wall),
            ]
        )
    header = [
        "google-adk",
        "start-up (`python -c pass`)",
        f"start-up <= {STARTUP_LIMIT}",
        "`import google.adk.runners`",
        "import CPU ms with / without",
        f"import <= {IMPORT_LIMIT}",
        "import, wall-time ratio",
    ]
    lines = [
        f"`{meta['command']}` on {meta['machine']}, {meta['date']}, "
        f"{meta['duration_s']:.0f} s (load average {meta['load']}).",
        "",
        meta["overhead_method"]
        .split(" Per turn")[0]
        .replace("`latest.json`", "`overheads.json`"),
        "",
        *_table(header, rows),
    ]
    return "\n".join(lines) + "\n"


WORKERS_HEADER = [
    "google-adk",
    "side",
    "client",
    "workers",
    "turns failed",
    "user messages lost",
    "summaries due",
    "stored",
    "duplicated",
    "wrong range",
    "lost",
    "summarizer calls",
    "turn ms p50 / p95",
    "stream ms p50 / p95",
]


def _workers_row(row: Dict[str, Any]) -> List[Any]:
    head = [row["release"], side_label(row), row["client"], row["workers"]]
    if "error" in row:
        return [*head, f"run failed: {row['error'][:120]}", *[""] * 9]
    r = row["result"]
    return [
        *head,
        _bad(r["turns_failed"]),
        _bad(r["user_messages_lost"]),
        r["summaries_triggered"],
        r["summaries_persisted"],
        _bad(r["summaries_duplicated"]),
        r["summaries_wrong_range"],
        _bad(r["summaries_lost"]),
        r["summarizer_calls"],
        _pair(r["turn_p50_ms"], r["turn_p95_ms"]),
        _pair(r["stream_p50_ms"], r["stream_p95_ms"]),
    ]


def workers_table(results: Dict[str, Any]) -> List[str]:
    """Rows ordered so that each N-worker row sits under its 1-worker row."""
    rows = sorted(
        results.get("workers") or [],
        key=lambda r: (
            _index(results, r["release"]),
            ["released", LOCK_OFF, "package"].index(r["side"]),
            r["client"],
            r["workers"],
        ),
    )
    return _table(WORKERS_HEADER, [_workers_row(r) for r in rows])


def _index(results: Dict[str, Any], release: str) -> int:
    """Releases in the order the run took them."""
    order = list(dict.fromkeys(r["release"] for r in results.get("workers") or []))
    return order.index(release)


def workers_line(row: Dict[str, Any]) -> str:
    """One server row, for the progress log."""
    head = f"{row['release']} {row['side']} {row['client']} x{row['workers']}"
    if "error" in row:
        return f"{head}: failed: {row['error'][:200]}"
    r = row["result"]
    return (
        f"{head}: {r['turns_failed']} failed, summaries "
        f"{r['summaries_persisted']}/{r['summaries_triggered']} "
        f"({r['summaries_wrong_range']} wrong range), {r['summarizer_calls']} calls, "
        f"turn p95 {r['turn_p95_ms']} ms, stream p95 {r['stream_p95_ms']} ms"
    )


WORKERS_METHOD = (
    "Real `adk api_server` processes (`python -m google.adk.cli api_server "
    "--session_service_uri ...`, the release's bench venv; released: "
    "`ADK_COMPACTION_BACKPORT_DISABLE=1` in every server; lock off: the package "
    "with `ADK_COMPACTION_BACKPORT_CROSS_PROCESS=0`, what its cross-process lock "
    "buys) on one new PostgreSQL "
    "database per release and side, the fake-model agent of `verify` (one app "
    "per row, so each row's sessions and summarizer calls are its own; calls "
    "are counted across processes through a file). Each row's workers are the "
    "first N of those servers: every session's turns go round-robin over them "
    "(a load balancer without session affinity); 1 is the same client against "
    "one of the same servers. Every server serves one untimed warm-up session "
    "first. Latencies are measured by the HTTP client (turn: request sent to "
    "the final reply's SSE event; stream: to the end of the response), client "
    "and servers on the same cores: on this 2-core machine, shared with other "
    "jobs, they are noisy; compare rows of one run, not runs. Wrong range: a "
    "stored summary whose invocation range is not one one process would store "
    "(a window cut elsewhere, 1-3 instead of 1-2: what the workers' lock off "
    "gives). Lost: a range one process would store that no stored summary "
    "covers (a window cut elsewhere counts too)."
)


def workers_section(results: Dict[str, Any]) -> List[str]:
    return ["", WORKERS_METHOD, "", *workers_table(results)]


def workers_body(results: Dict[str, Any], heading: str) -> str:
    """``--workers-only``: the server rows alone, with the run's facts."""
    meta = results["meta"]
    lines = [run_line(meta), workload_line(meta), *workers_section(results)]
    return "\n".join(lines) + "\n"


def run_line(meta: Dict[str, Any]) -> str:
    return (
        f"`{meta['command']}` on {meta['machine']}, {meta['date']}, "
        f"{meta['duration_s']:.0f} s (load average {meta['load']})."
    )


def workload_line(meta: Dict[str, Any]) -> str:
    w = meta["workload"]
    return (
        f"Workload: {w['sessions']} sessions x {w['turns']} turns, compaction every "
        f"{w['interval']} invocations (overlap {w['overlap']}), fake model reply "
        f"{w['reply_delay'] * 1000:.0f} ms, fake summarizer "
        f"{w['summarizer_delay'] * 1000:.0f} ms."
    )


def package_status(results: Dict[str, Any]) -> List[str]:
    """Why the package did not apply, per release, in its own words."""
    seen: Dict[str, str] = {}
    for config in results["configs"]:
        status = config.get("status") or {}
        if config["side"] == "package" and not status.get("applied"):
            seen.setdefault(config["release"], status.get("reason", "unknown"))
    return [f"- google-adk {r}: package not applied: {why}" for r, why in seen.items()]


def render(results: Dict[str, Any]) -> str:
    """The whole ``latest.md``."""
    return "# Benchmark results\n\n" + body(results, "##")


def body(results: Dict[str, Any], heading: str) -> str:
    """Everything below the title; ``heading`` marks its sections (## or ###)."""
    meta = results["meta"]
    w = meta["workload"]
    lines = [
        f"`{meta['command']}` on {meta['machine']}, {meta['date']}, "
        f"{meta['duration_s']:.0f} s (load average {meta['load']}).",
        f"Workload: {w['sessions']} sessions x {w['turns']} turns, compaction every "
        f"{w['interval']} invocations (overlap {w['overlap']}), fake model reply "
        f"{w['reply_delay'] * 1000:.0f} ms, fake summarizer "
        f"{w['summarizer_delay'] * 1000:.0f} ms, async API. `sequential` reads "
        "each stream to its end before the next message; `eager` sends the next "
        "message at the final reply. Turn: message sent to final reply; stream: "
        "message sent to the end of the stream; no compaction: the same app "
        "without `events_compaction_config`, run in the same process just before.",
        "",
        *outcomes(results),
        "",
        f"{heading} Targets",
        "",
        "The package's targets; released and patched google-adk are checked "
        "against them too, for comparison.",
        "",
        *targets(results),
        "",
        f"{heading} Overheads",
        "",
        meta["overhead_method"],
        "",
        *overheads(results),
    ]
    if results.get("workers"):
        lines += [
            "",
            f"{heading} Several workers, one database (`adk api_server`)",
            *workers_section(results),
        ]
    status = package_status(results)
    if status:
        lines += ["", f"{heading} Package status", "", *status]
    return "\n".join(lines) + "\n"
