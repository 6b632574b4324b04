"""The benchmark runs end to end on a tiny workload (no timing is asserted).

``--here`` keeps it to this interpreter's google-adk (no venvs, no network);
SQLite only, so it needs no database server. Figures are not checked: timing
belongs to ``python -m bench``, not to the test suite.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def run_bench(out: Path, *args: str, timeout: float) -> None:
    """``python -m bench ARGS --out OUT`` here; it must succeed."""
    done = subprocess.run(
        [sys.executable, "-m", "bench", *args, "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.mark.interpreters
def test_tiny_bench_writes_its_tables(tmp_path: Path) -> None:
    run_bench(
        tmp_path, "--tiny", "--here", "--databases", "sqlite", "--no-chart", timeout=300
    )

    results = json.loads((tmp_path / "latest.json").read_text())
    version = metadata.version("google-adk")
    rows = {(c["side"], c["client"]) for c in results["configs"]}
    assert rows == {
        (side, client)
        for side in ("released", "package")
        for client in ("sequential", "eager")
    }
    assert all("error" not in c for c in results["configs"]), results["configs"]
    assert all(c["compaction"]["turns"] == 8 for c in results["configs"])
    assert [o["release"] for o in results["overheads"]] == [version]

    table = (tmp_path / "latest.md").read_text()
    assert "| google-adk | side | database | client | turns failed |" in table
    assert f"| {version} | released | sqlite | eager |" in table
    assert "## Targets" in table
    assert "## Overheads" in table


def test_every_knob_of_the_bench_workload_reaches_the_scenario() -> None:
    """``Workload.from_mapping`` skips keys that are not fields: a knob of
    ``WorkloadSpec`` the scenario does not know would vanish silently."""
    from adk_compaction_backport.verify.scenario import Workload
    from bench.plan import WorkloadSpec, warm_up_workload

    spec = WorkloadSpec(sessions=5, turns=9, interval=3, overlap=2, reply_delay=0.2)
    workload = Workload.from_mapping({**spec.as_dict(), "workers": [1]}, client="x")
    assert {k: getattr(workload, k) for k in spec.as_dict()} == spec.as_dict()
    assert workload.client == "x"
    warm = warm_up_workload(spec.as_dict())
    assert (warm.sessions, warm.turns, warm.interval, warm.overlap) == (1, 4, 3, 2)
    assert (warm.summarizer_delay, warm.reply_delay) == (0, 0)
    assert warm.client == "sequential"


def test_workers_table_puts_each_two_worker_row_under_its_one_worker_row() -> None:
    """``--workers``' table from made-up rows (no server is started here)."""
    from bench import report

    def row(side: str, workers: int, stored: int, calls: int) -> dict:
        result = {
            "turns_failed": 0,
            "user_messages_lost": 0,
            "summaries_triggered": 12,
            "summaries_persisted": stored,
            "summaries_duplicated": 0,
            "summaries_wrong_range": stored - 12 if stored > 12 else 0,
            "summaries_lost": 0,
            "summarizer_calls": calls,
            "turn_p50_ms": 100.0,
            "turn_p95_ms": 150.0,
            "stream_p50_ms": 600.0,
            "stream_p95_ms": 700.0,
        }
        status = {"applied": side == "package"}
        return {
            "release": "2.13.0",
            "side": side,
            "workers": workers,
            "client": "eager",
            "status": status,
            "result": result,
        }

    results = {
        "workers": [
            row("package", 2, 12, 12),
            row("released", 2, 20, 20),
            row("package", 1, 12, 12),
            row("released", 1, 12, 12),
        ]
    }
    lines = report.workers_table(results)
    assert lines[0].startswith("| google-adk | side | client | workers |")
    body = [line.split(" | ")[1:4] for line in lines[2:]]
    assert body == [
        ["released", "eager", "1"],
        ["released", "eager", "2"],
        ["+ package", "eager", "1"],
        ["+ package", "eager", "2"],
    ]
    assert "| 20 | 0 | 8 | 0 | 20 | 100 / 150 | 600 / 700 |" in lines[3]


@pytest.mark.interpreters
@pytest.mark.api_server
def test_first_turn_bench_writes_its_table(tmp_path: Path) -> None:
    """``--first-turn-only``: fresh servers, both sides, every session service."""
    run_bench(
        tmp_path, "--first-turn-only", "--here", "--first-turn-rounds", "1", timeout=900
    )

    rows = json.loads((tmp_path / "first_turn.json").read_text())["first_turn"]
    assert all("error" not in row for row in rows), rows
    version = metadata.version("google-adk")
    kinds = ["database"]
    if tuple(int(p) for p in version.split(".")[:2]) >= (1, 19):
        kinds.append("sqlite_service")
    assert [(row["release"], row["kind"]) for row in rows] == [
        (version, kind) for kind in kinds
    ]
    for row in rows:
        for side in ("package", "released"):
            (turns,) = row["runs"][side]  # one round
            assert len(turns) == 3, row
    table = (tmp_path / "first_turn.md").read_text()
    assert "| google-adk | session service | first turn, + package / released |" in (
        table
    )


def test_long_sessions_tables_mark_misses_and_broken_released_rows() -> None:
    """``--long-sessions``' tables from made-up rows (nothing is run here)."""
    from bench import long_session_rows

    def side(cpu_ms: float, p95: float, failed: int = 0) -> dict:
        return {
            "turn_ms": [p95 - 10] * 15 + [p95] * 5,
            "cpu_s_per_turn": cpu_ms / 1000,
            "turns_per_s": 1000 / p95,
            "turns": 20,
            "failed_turns": failed,
            "summaries": 8,
            "summarizer_calls": 8,
            "package_reads": [[20, 0.01]] * 16,
            "runner_reads": [[4000, 0.4]] * 16,
        }

    def row(release: str, events: int, ours: dict, theirs: dict, **more) -> dict:
        return {
            "release": release,
            "kind": "sqlite",
            "events": events,
            "sessions": 1,
            "client": "sequential",
            "package": ours,
            "released": theirs,
            **more,
        }

    meta = {
        "command": "python -m bench --long-sessions 100 4000",
        "machine": "2 cores",
        "date": "today",
        "duration_s": 1.0,
        "load": "1.0 before, 1.0 after",
        "workload": {
            "interval": 2,
            "overlap": 1,
            "reply_delay": 0.1,
            "summarizer_delay": 0.5,
        },
        "long_session_turns": 16,
    }
    rows = [
        row("2.13.0", 100, side(51, 700), side(50, 700)),
        row("2.13.0", 4000, side(600, 900), side(500, 800)),
        row("1.18.0", 4000, side(600, 900), side(10, 30, failed=16)),
        row("2.13.0", 1000, side(200, 900), side(200, 1000), sessions=20),
    ]
    rows[-1]["client"] = "eager"
    text = long_session_rows.body({"meta": meta, "long_sessions": rows})

    assert "| 2.13.0 | DatabaseSessionService (SQLite) | 4000 |" in text
    assert "**MISS** (+100.0 ms, limit 25.0)" in text
    assert "n/a (released failed 16 of 20 turns: nothing to compare)" in text
    assert "**grows**" in text  # +100 ms at 4000 against +1 ms at 100
    assert "| 2.13.0 | DatabaseSessionService (SQLite) | 20 x 1000, 20 |" in text
    assert "pass (1.11 vs 1.00)" in text  # successful turns per second


def test_long_session_rounds_alternate_and_pool() -> None:
    """Each side runs in every round, the order flipping (ABBA); a side's
    rounds pool into one row, or none if one of them failed."""
    from bench.long_session_rows import merged, side_order

    assert side_order(2) == ["released", "package", "package", "released"]

    def one(cpu_ms: float, turns: int) -> dict:
        return {
            "turn_ms": [100.0] * turns,
            "cpu_s_per_turn": cpu_ms / 1000,
            "turns_per_s": 2.0,
            "failed_turns": 1,
            "failures": ["x"],
            "summaries": 4,
            "summarizer_calls": 4,
            "full_package_reads": 0,
            "package_reads": [[20, 0.01]],
            "runner_reads": [[4000, 0.4]],
        }

    pooled = merged([one(100, 8), one(200, 24)])
    assert pooled["cpu_s_per_turn"] == pytest.approx(0.175)  # weighed by turns
    assert len(pooled["turn_ms"]) == 32 and pooled["rounds"] == 2
    assert (pooled["summaries"], pooled["failed_turns"]) == (8, 2)
    assert len(pooled["package_reads"]) == 2
    assert merged([one(100, 8), {"error": "the run failed"}]) is None
    assert merged([one(100, 8), None]) is None


def test_p95_of_every_turn_counts_a_failed_turn_as_never_answered() -> None:
    from bench.long_session_rows import p_of_every_turn

    def run(failed: int) -> dict:
        return {
            "turn_ms": [float(n) for n in range(1, 101 - failed)],
            "failed_turns": failed,
        }

    assert p_of_every_turn(run(0), 95) == pytest.approx(95.05)
    assert p_of_every_turn(run(4), 95) == pytest.approx(95.05)  # the slowest 4 failed
    assert p_of_every_turn(run(5), 95) == math.inf  # its rank lands on a failure
    assert p_of_every_turn({"turn_ms": [], "failed_turns": 3}, 95) == math.inf


def test_instruction_count_tables_mark_misses_and_growth() -> None:
    """``bench.instruction_counts``' table and flatness from made-up rows."""
    from bench import instruction_counts

    def side(per_turn: float) -> dict:
        counted = dict.fromkeys(instruction_counts.COUNTED, 0)
        return {**counted, "per_turn": per_turn, "summarizer_calls": 1}

    def row(kind: str, events: int, released: float, package: float) -> dict:
        return {
            "release": "2.13.0",
            "kind": kind,
            "events": events,
            "first": 2,
            "turns": 2,
            "released": side(released),
            "package": side(package),
            "extra_per_turn": package - released,
            "extra_ratio": (package - released) / released,
        }

    rows = [
        row("sqlite", 100, 90e6, 100e6),  # +10 M
        row("sqlite", 4000, 2500e6, 2515e6),  # +15 M: within 2x, 0.6%
        row("sqlite_service", 100, 70e6, 75e6),  # +5 M
        row("sqlite_service", 4000, 2000e6, 2150e6),  # +150 M: grows, 7.5%
        row("postgresql", 100, 90e6, 89e6),  # -1 M
        row("postgresql", 4000, 2500e6, 2490e6),  # less than released: flat
    ]
    flat = {item["kind"]: item["flat"] for item in instruction_counts.flatness(rows)}
    assert flat == {"sqlite": True, "sqlite_service": False, "postgresql": True}
    results = {
        "command": "python -m bench.instruction_counts",
        "machine": "2 cores",
        "when": "today",
        "seconds": 1.0,
        "first": 2,
        "turns": 2,
        "rows": rows,
        "flatness": instruction_counts.flatness(rows),
    }
    text = instruction_counts.markdown(results)
    assert "| 2.13.0 | SqliteSessionService | 4000 | 2,000.0 | 2,150.0 |" in text
    assert "+150.0 M (+7.5%) | **MISS** |" in text
    assert "+15.0 M (+0.6%) | pass |" in text
    assert "SqliteSessionService: 5.0 M at 100 events, 150.0 M at 4000" in text
    assert "**grows**" in text
