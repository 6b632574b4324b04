"""One workload's report (``verify.scenario.Report.as_dict``) as table figures."""

from __future__ import annotations

from typing import Any, Dict, Optional

from bench.stats import percentile


def _ms(seconds: Optional[float]) -> Optional[float]:
    return None if seconds is None else round(seconds * 1000, 1)


def summarize(report: Dict[str, Any]) -> Dict[str, Any]:
    """Counts as the scenario found them; latencies as p50/p95 in milliseconds.

    Lost summaries are the expected ranges that no stored summary covers.
    """
    turn = report.get("turn_latencies", [])
    stream = report.get("stream_latencies", [])
    summary_write = report.get("summary_write_latencies", [])
    return {
        "turns": report["turns"],
        "turns_failed": report["turns_failed"],
        "user_messages_lost": report["user_messages_lost"],
        "summaries_triggered": report["summaries_expected"],
        "summaries_persisted": report["summaries_stored"],
        "summaries_duplicated": report["summaries_duplicated"],
        "summaries_wrong_range": report["summaries_unexpected"],
        "summaries_lost": report["summaries_missing"],
        "summarizer_calls": report["summarizer_calls"],
        "turn_p50_ms": _ms(percentile(turn, 50)),
        "turn_p95_ms": _ms(percentile(turn, 95)),
        "stream_p50_ms": _ms(percentile(stream, 50)),
        "stream_p95_ms": _ms(percentile(stream, 95)),
        "summary_write_p50_ms": _ms(percentile(summary_write, 50)),
        "summary_write_p95_ms": _ms(percentile(summary_write, 95)),
        "errors": len(report.get("errors", [])),
        "first_errors": report.get("errors", [])[:3],
        "turn_ms": [_ms(t) for t in turn],
        "stream_ms": [_ms(t) for t in stream],
    }
